"""The kvloop extractor model: a jointly trained BERT + LayoutLM ensemble.

Entry points: :func:`extractor.model.predictor.load_predictor` (inference),
:func:`extractor.model.zoo.build_model` (a fresh model by name), and the policy API on
:class:`extractor.model.ensemble.KVEnsemble` (see that module's docstring).
"""
