"""Property-based tests (Hypothesis) of the loaders, the aligner and span decoding.

The loaders must turn any bytes into documents or named failures, never an exception of
another kind; the aligner must find a value that is printed verbatim and never break on odd
words; span decoding must be a normalised distribution that its k-best, its gathers and its
sampler all agree with.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extractor.align import (
    MAX_LINES,
    Stream,
    align_document,
    edit_matrix,
    span_value,
    spans_to_tags,
    tags_to_spans,
    value_spans,
)
from extractor.document import RECEIPT_SCHEMA, Document, FieldSpec, Word
from extractor.loaders.images import document_ids
from extractor.loaders.jsonl import load_jsonl, parse_document_line
from extractor.loaders.labelstudio import load_labelstudio
from extractor.loaders.report import DocumentLoadError, printable
from extractor.loaders.sroie import (
    parse_box_line,
    read_box_file,
    read_key_file,
    reading_order,
    split_line,
)
from extractor.model.decode import (
    decode_field,
    field_label_ids,
    outcome_log_probs,
    sample_spans,
    span_index_log_prob,
    span_log_probs,
    top_spans,
)
from extractor.normalize import lenient_key

# Few examples each: the suite runs on 2 busy cores; Hypothesis keeps the failures it finds.
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

coord = st.integers(min_value=0, max_value=5000)
texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=16)
tokens = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), min_size=1, max_size=8)


@st.composite
def boxes(draw) -> tuple[int, int, int, int]:
    x0, x1 = sorted((draw(coord), draw(coord)))
    y0, y1 = sorted((draw(coord), draw(coord)))
    return (x0, y0, x1, y1)


@st.composite
def word_lists(draw, min_size: int = 0, max_size: int = 12) -> list[Word]:
    n = draw(st.integers(min_size, max_size))
    return [Word(draw(tokens), draw(boxes()), draw(st.floats(0, 1)), draw(st.integers(0, 3)))
            for _ in range(n)]


# -- loaders -------------------------------------------------------------------------------------

@SETTINGS
@given(st.lists(coord, min_size=8, max_size=8), texts)
def test_box_line_round_trip(coords, transcript):
    raw = ",".join(map(str, coords)) + "," + transcript
    box, text = parse_box_line(raw)
    xs, ys = coords[0::2], coords[1::2]
    assert box == (min(xs), min(ys), max(xs), max(ys))
    assert text == transcript.strip()


@SETTINGS
@given(boxes(), st.lists(tokens, min_size=1, max_size=8), st.integers(0, 50))
def test_split_line_words_tile_the_line(box, parts, line):
    text = " ".join(parts)
    words = split_line(box, text, line)
    assert [w.text for w in words] == text.split()
    for a, b in itertools.pairwise(words):
        assert a.box[2] <= b.box[0]  # left to right, no overlap
    for w in words:
        assert box[0] <= w.box[0] <= w.box[2] <= box[2]
        assert (w.box[1], w.box[3], w.line) == (box[1], box[3], line)


@SETTINGS
@given(st.lists(boxes(), max_size=15, unique_by=lambda b: ((b[1] + b[3]) / 2, b[0])),
       st.randoms())
def test_reading_order_is_a_permutation_independent_of_input_order(bs, rnd):
    items = [(b, i) for i, b in enumerate(bs)]
    shuffled = list(items)
    rnd.shuffle(shuffled)
    out = reading_order(items)
    assert sorted(out, key=lambda x: x[1]) == items
    assert reading_order(shuffled) == out


@SETTINGS
@given(st.binary(max_size=300))
def test_box_file_bytes_give_lines_or_one_named_error(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("box") / "x.csv"
    p.write_bytes(data)
    try:
        lines = read_box_file(p)
    except DocumentLoadError as e:
        assert str(p) in e.path and e.reason
    else:
        assert lines and all(t for _, t in lines)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                           | texts, lambda c: st.lists(c, max_size=3)
                           | st.dictionaries(texts, c, max_size=3), max_leaves=6)


@SETTINGS
@given(json_values | st.dictionaries(st.sampled_from(["company", "date", "address", "total",
                                                      "totl"]), json_values, max_size=5))
def test_key_file_json_gives_gold_or_one_named_error(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("key") / "k.json"
    p.write_text(json.dumps(data), encoding="utf-8")
    try:
        gold = read_key_file(p)
    except DocumentLoadError as e:
        assert e.path == str(p) and e.reason
    else:
        assert list(gold) == RECEIPT_SCHEMA.field_names
        assert all(v is None or isinstance(v, str) for v in gold.values())
        assert isinstance(data, dict) and set(data) <= set(RECEIPT_SCHEMA.field_names)


@st.composite
def documents(draw) -> Document:
    words = draw(word_lists(max_size=5))
    return Document(id=draw(texts), words=words, width=draw(st.integers(1, 5000)),
                    height=draw(st.integers(1, 5000)), page=draw(st.integers(0, 9)),
                    gold=draw(st.none() | st.dictionaries(st.sampled_from(
                        RECEIPT_SCHEMA.field_names), st.none() | texts)),
                    variants=draw(st.dictionaries(st.sampled_from(["psm4", "psm6_x2"]),
                                                  word_lists(max_size=3), max_size=2)),
                    meta=draw(st.dictionaries(texts, st.integers(), max_size=3)))


@SETTINGS
@given(documents())
def test_jsonl_line_round_trips_any_document(doc):
    line = json.dumps(doc.export(), ensure_ascii=False)
    assert parse_document_line(line).export() == doc.export()


@SETTINGS
@given(st.lists(documents().map(lambda d: json.dumps(d.export())) | texts.filter(
    lambda t: "\n" not in t and "\r" not in t), max_size=4))
def test_jsonl_file_every_line_is_a_document_or_a_failure(tmp_path_factory, lines):
    p = tmp_path_factory.mktemp("jsonl") / "d.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = load_jsonl(p)
    with p.open(encoding="utf-8") as fh:
        nonblank = sum(1 for raw in fh if raw.strip())
    assert len(report.documents) + len(report.failures) == nonblank
    assert all(f.path.startswith(f"{p}:") for f in report.failures)


@SETTINGS
@given(st.lists(json_values, min_size=1, max_size=4).map(
    lambda ts: [t if not isinstance(t, dict) else {"data": {}, **t} for t in ts]))
def test_labelstudio_tasks_never_raise_anything_but_named_failures(tmp_path_factory, tasks):
    p = tmp_path_factory.mktemp("ls") / "export.json"
    p.write_text(json.dumps(tasks), encoding="utf-8")
    report = load_labelstudio(p)
    assert report.documents or report.failures
    assert all(f.path.startswith(str(p)) for f in report.failures)


names = st.text(st.sampled_from("ab.-"), min_size=1, max_size=4)


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["", "x/", "y/", "x/y/"]), names,
                          st.sampled_from([".jpg", ".png", ".pdf", ".tif"]),
                          st.integers(1, 3)), max_size=10, unique_by=lambda t: t[:3]),
       st.randoms())
def test_document_ids_are_distinct_and_do_not_depend_on_order(files, rnd):
    root = Path("/scans")
    pages = {root / f"{d}{n}{s}": (p if s == ".pdf" else 0) for d, n, s, p in files}
    ids = document_ids(pages, root)
    flat = [i for v in ids.values() for i in v]
    assert len(flat) == len(set(flat)) == sum(max(1, n) for n in pages.values())
    shuffled = list(pages.items())
    rnd.shuffle(shuffled)
    assert document_ids(dict(shuffled), root) == ids


@SETTINGS
@given(st.binary(max_size=30))
def test_printable_names_are_valid_utf8(raw):
    import os

    name = printable(os.fsdecode(raw))
    assert name.encode("utf-8").decode("utf-8") == name
    if raw.decode("utf-8", "ignore").encode() == raw:  # already UTF-8: kept as it is
        assert name == raw.decode("utf-8")


# -- aligner ---------------------------------------------------------------------------------

@st.composite
def disjoint_spans(draw) -> tuple[int, dict[str, list[int]]]:
    n = draw(st.integers(0, 20))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=8, unique=True)))
    spans: dict[str, list[int]] = {}
    fields = list(RECEIPT_SCHEMA.field_names)
    for k, (a, b) in enumerate(zip(cuts[0::2], cuts[1::2])):
        if a < b and k < len(fields):
            spans[fields[k]] = list(range(a, b))
    return n, spans


@SETTINGS
@given(disjoint_spans())
def test_tags_and_spans_round_trip(case):
    n, spans = case
    tags = spans_to_tags(n, spans)
    assert len(tags) == n
    assert tags_to_spans(tags, RECEIPT_SCHEMA) == {f: [idx] for f, idx in spans.items()}


def naive_semi_global(pattern: str, text: str) -> list[int]:
    """Fewest edits of ``pattern`` into a substring of ``text`` ending at each position."""
    from eval.metrics import levenshtein

    return [min(levenshtein(pattern, text[i:j]) for i in range(j + 1))
            for j in range(len(text) + 1)]


@SETTINGS
@given(st.text("abc", min_size=1, max_size=5), st.lists(st.text("abc", min_size=1, max_size=3),
                                                         min_size=1, max_size=4))
def test_edit_matrix_equals_naive_semi_global_distance(pattern, parts):
    stream = Stream.of([Word(p, (0, 0, 1, 1)) for p in parts])
    d = edit_matrix(pattern, stream)
    assert d[-1].tolist() == naive_semi_global(pattern, stream.text)


@SETTINGS
@given(word_lists(min_size=1), st.data())
def test_a_value_printed_verbatim_is_aligned_to_words_that_read_as_it(words, data):
    words = [Word(w.text, w.box, w.confidence, 0) for w in words]  # one line
    i = data.draw(st.integers(0, len(words) - 1))
    j = data.draw(st.integers(i, min(len(words) - 1, i + MAX_LINES["text"] * 4)))
    gold = " ".join(w.text for w in words[i:j + 1])
    doc = Document("d", words, 5000, 5000, gold={"company": gold})
    al = align_document(doc)
    assert "company" in al.spans, al.unaligned
    assert al.match_score["company"] == 1.0
    got = span_value(words, al.spans["company"], RECEIPT_SCHEMA["company"])
    assert lenient_key(got) == lenient_key(gold)


@SETTINGS
@given(word_lists(), st.dictionaries(st.sampled_from(RECEIPT_SCHEMA.field_names),
                                     st.none() | texts))
def test_alignment_never_breaks_and_tags_match_spans(words, gold):
    al = align_document(Document("d", words, 5000, 5000, gold=gold))
    assert len(al.tags) == len(words)
    assert tags_to_spans(al.tags, RECEIPT_SCHEMA) == {f: [s] for f, s in al.spans.items()}
    assert not set(al.spans) & set(al.unaligned)
    taken = [i for s in al.spans.values() for i in s]
    assert len(taken) == len(set(taken))  # no word in two fields


# word texts that make amounts and dates inside longer spans, amounts as a whole
# ("RM 12.00", "1,234 .50"), dates across words ("19 Oct 2018"), blank and spaced words
value_tokens = st.sampled_from(["12.00", "TOTAL:12.00", "RM", "RM12.00", "12", ".00", "1,234",
                                "-3.5", "19/10/2018", "19", "Oct", "2018", "Date:19/10/2018",
                                "x", "", " ", "12 .00", "CASH", "2.00", "-", ",", "10:30"])


@SETTINGS
@given(st.lists(value_tokens, min_size=1, max_size=10), st.sampled_from(["total", "date",
                                                                          "company"]),
       st.integers(1, 6), st.data())
def test_value_spans_are_the_spans_whose_span_value_spells_the_value(texts_, field, max_len,
                                                                     data):
    words = [Word(t, (0, 0, 1, 1)) for t in texts_]
    spec = RECEIPT_SCHEMA[field]
    n = len(words)
    spans = [range(s, e + 1) for s in range(n) for e in range(s, min(n, s + max_len))]
    # the value of some span (most often spelled by several), or a word's text
    value = data.draw(st.sampled_from([span_value(words, r, spec) for r in spans] + texts_))
    naive = [tuple(r) for r in spans
             if lenient_key(span_value(words, r, spec)) == lenient_key(value) != ""]
    assert value_spans(words, spec, value, max_len) == naive


# -- span decoding ---------------------------------------------------------------------------

@st.composite
def tag_log_probs(draw, max_words: int = 9) -> torch.Tensor:
    n = draw(st.integers(1, max_words))
    logits = draw(st.lists(st.floats(-6, 6), min_size=n * len(RECEIPT_SCHEMA.labels),
                           max_size=n * len(RECEIPT_SCHEMA.labels)))
    t = torch.tensor(logits, dtype=torch.float64).view(n, len(RECEIPT_SCHEMA.labels))
    return torch.log_softmax(t, dim=-1)


FIELDS = st.sampled_from(RECEIPT_SCHEMA.field_names)


@SETTINGS
@given(tag_log_probs(), FIELDS, st.integers(1, 12))
def test_span_distribution_is_normalised(lp, field, max_len):
    b, i = field_label_ids(RECEIPT_SCHEMA, field)
    span_lp, absent_lp = span_log_probs(lp, b, i, max_len)
    assert span_lp.shape == (lp.shape[0], min(max_len, lp.shape[0]))
    total = torch.logsumexp(torch.cat([span_lp.flatten(), absent_lp.view(1)]), 0)
    assert math.isclose(float(total), 0.0, abs_tol=1e-9)


@SETTINGS
@given(tag_log_probs(), FIELDS, st.integers(1, 4), st.data())
def test_gathers_agree_with_the_table_and_each_other(lp, field, max_len, data):
    n = lp.shape[0]
    b, i = field_label_ids(RECEIPT_SCHEMA, field)
    span_lp, absent_lp = span_log_probs(lp, b, i, max_len)
    outcomes = []
    for _ in range(data.draw(st.integers(1, 5))):
        s = data.draw(st.integers(0, n - 1))
        e = data.draw(st.integers(s, n - 1))
        outcomes.append(data.draw(st.sampled_from([[], list(range(s, e + 1))])))
    got = outcome_log_probs(span_lp, absent_lp, lp, b, i, outcomes)
    one = torch.stack([span_index_log_prob(span_lp, absent_lp, lp, b, i, o) for o in outcomes])
    assert torch.allclose(got, one)
    for o, v in zip(outcomes, got.tolist()):
        if not o:
            assert v == float(absent_lp)
        elif len(o) <= span_lp.shape[1]:
            assert v == float(span_lp[o[0], len(o) - 1])


@SETTINGS
@given(tag_log_probs(), FIELDS, st.integers(1, 20))
def test_top_spans_are_the_best_entries_in_order(lp, field, n):
    b, i = field_label_ids(RECEIPT_SCHEMA, field)
    span_lp, _ = span_log_probs(lp, b, i)
    top = top_spans(span_lp, n)
    values = [v for _, _, v in top]
    assert values == sorted(values, reverse=True)
    finite = sorted(span_lp[torch.isfinite(span_lp)].tolist(), reverse=True)
    assert len(top) == min(n, len(finite))
    for (s, e, v), want in zip(top, finite):
        assert math.isclose(v, want, rel_tol=1e-12, abs_tol=1e-12)
        assert span_lp[s, e - s].item() == v


@SETTINGS
@given(tag_log_probs(), FIELDS, st.integers(1, 30))
def test_samples_are_valid_outcomes(lp, field, n):
    b, i = field_label_ids(RECEIPT_SCHEMA, field)
    span_lp, absent_lp = span_log_probs(lp, b, i, 4)
    for o in sample_spans(span_lp, absent_lp, n, torch.Generator().manual_seed(0)):
        assert o == [] or (o == list(range(o[0], o[-1] + 1)) and o[-1] < lp.shape[0]
                           and len(o) <= 4)


@SETTINGS
@given(st.data(), FIELDS, st.integers(1, 6))
def test_decoded_candidates_are_distinct_typed_values_with_consistent_mass(data, field, k):
    lp = data.draw(tag_log_probs())
    words = [Word(data.draw(st.sampled_from(["RM", "12.50", "3.00", "12/03/2018", "ACME",
                                             "SDN", "BHD", "TOTAL", "04"])), (0, 0, 1, 1))
             for _ in range(lp.shape[0])]
    spec: FieldSpec = RECEIPT_SCHEMA[field]
    dec = decode_field(words, lp, RECEIPT_SCHEMA, field, k=k)
    assert len(dec.candidates) <= k
    keys = [lenient_key(c.value) for c in dec.candidates]
    assert len(keys) == len(set(keys)) and all(keys)
    scores = [c.score for c in dec.candidates]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) + dec.absent_prob <= 1.0 + 1e-9
    for c in dec.candidates:
        assert lenient_key(span_value(words, c.word_indices, spec)) == lenient_key(c.value)
        assert math.isclose(c.logprob, math.log(c.score), rel_tol=1e-9)
