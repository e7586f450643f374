"""The numbers of a comparison, from its ``ArmResult`` rows: ``analyse(results) -> dict``.

A *cell* is one (regime, evaluation set, round, arm) with one row per seed. For each cell:

* **pooled F1** over seeds with a 95% percentile-bootstrap interval whose resampling unit is
  the *document*: each document's ``[tp, fp, fn]`` are summed over the seeds that scored it,
  then documents are drawn with replacement (``eval.bootstrap.bootstrap_ci``). Seeds are
  averaged within a document rather than treated as more documents: the same receipt under
  three seeds is one receipt, and counting it three times would make the interval too narrow.
  With ``resample_seeds`` (a start model per seed: the seeds are samples of the whole
  pipeline, start model included) seeds are drawn too, independently of the documents
  (``eval.bootstrap.crossed_bootstrap_ci``), so the interval also holds the seed-to-seed
  variance; ``method["ci_variance"]`` says which the intervals include.
* **per-seed F1** (mean ± sample sd over seeds: how much the arm's outcome depends on its
  seed), per-field accuracy and all-fields-correct accuracy over (seed, document) pairs, the
  budget (``reviewed_docs``, ``operator_seconds``: means over seeds), ``train_seconds`` (mean
  and total over seeds) and the numeric ``extras`` (means over seeds; a list counts as its
  last value, the state the round ended in).

Each arm is compared with the **baseline** (default ``sft``: "is SFT enough?") and with the
**floor** (default ``none``, the start model: "does it learn at all?") on the same documents:

* the F1 difference ``arm - reference`` with a paired bootstrap interval: rows are matched by
  (seed, document) and summed per document over the matched seeds, so documents are again the
  resampling unit (``eval.bootstrap.paired_bootstrap``);
* McNemar's exact test on per-(seed, document, field) exact match (``eval.significance``);
  its p-values are Holm-adjusted within each (regime, evaluation set, round), over every
  comparison made there (vs baseline and vs floor).

A comparison is **significant** when the Holm-adjusted McNemar p is below ``alpha`` *and* the
bootstrap interval of the F1 difference excludes 0 on the same side. McNemar alone treats the
(seed, document, field) items as independent, which fields of one receipt and seeds of one
document are not; the document-level bootstrap does not assume that, and the Holm adjustment
covers the many arms. Requiring both keeps "significant" from resting on either weakness.

The floor never learns: a round where it has no rows is compared against its round 0.
``references`` (default ``gold``, the ceiling, and ``rl-oracle``, an ablation with the exact
reward) are compared like every arm but never named the best arm: they are not something the
operators' reviews alone could ship.

Over-optimisation: when an arm's rows carry ``mean_reward`` and ``kl`` and its F1 peaks at an
earlier round, then falls while both keep rising, the policy is exploiting the reward model
rather than learning the task (Gao et al. 2022, "Scaling Laws for Reward Model
Overoptimization": the gold score rises then falls with KL while the proxy reward keeps
rising). The note carries the paired interval of that fall.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from eval.bootstrap import (
    crossed_bootstrap_ci,
    crossed_paired_bootstrap,
    f1_of_counts,
    paired_bootstrap,
)
from eval.significance import bootstrap_ci, holm, mcnemar
from kvloop.compare.arms import arm_order_key, ceiling_arm
from kvloop.compare.arms import references as arm_references
from kvloop.compare.forgetting import SEEN, forgetting, forgetting_sentence
from kvloop.compare.records import ArmResult

DEFAULT_REFERENCES: tuple[str, ...] = arm_references()
CEILING = ceiling_arm()
KL_KEYS = ("kl", "mean_kl")  # the runner logs RL's mean KL as ``mean_kl``
EVAL_SET_WORDS = {"dev": "dev", "unseen-vendor": "unseen vendors",
                  "new-vendor": "new vendors", "seen-vendor": "seen vendors"}

CellKey = tuple[str, str, int, str]  # (regime, eval_set, round, arm)
Cells = dict[CellKey, dict[int, ArmResult]]  # ... -> seed -> row


# -- grouping ---------------------------------------------------------------------------------

def group_cells(results: Iterable[ArmResult]) -> Cells:
    """Rows by (regime, eval_set, round, arm), then by seed (a later duplicate wins)."""
    cells: Cells = defaultdict(dict)
    for r in results:
        cells[(r.regime, r.eval_set, r.round, r.arm)][r.seed] = r
    return dict(cells)


def arm_order(arms: Iterable[str]) -> list[str]:
    """Arms in the order ``kvloop.compare.arms.ARMS`` lists them (``X+tuned`` after ``X``),
    unknown ones after."""
    return sorted(set(arms), key=arm_order_key)


def eval_set_order(names: Iterable[str]) -> list[str]:
    first = list(EVAL_SET_WORDS)
    return sorted(set(names), key=lambda e: (first.index(e) if e in first else len(first), e))


# -- one cell ---------------------------------------------------------------------------------

def _scalar(v: Any) -> float | None:
    """A number from an ``extras`` value: itself, or the last number of a list."""
    if isinstance(v, (list, tuple)):
        v = v[-1] if v else None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def numeric_extras(rows: Iterable[ArmResult]) -> dict[str, float]:
    """Mean over rows of each numeric ``extras`` entry (``regime`` and text are skipped)."""
    vals: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        for k, v in r.extras.items():
            x = _scalar(v)
            if x is not None:
                vals[k].append(x)
    return {k: float(np.mean(v)) for k, v in sorted(vals.items())}


def kl_of(extras: dict[str, float]) -> float | None:
    """The KL an arm's extras logged, under either name."""
    return next((extras[k] for k in KL_KEYS if k in extras), None)


def pooled_doc_counts(rows: Iterable[ArmResult]) -> tuple[list[str], np.ndarray]:
    """Each document's ``[tp, fp, fn]`` summed over the rows (seeds) that scored it."""
    sums: dict[str, np.ndarray] = {}
    for r in rows:
        for d, c in zip(r.doc_ids, r.counts):
            sums[d] = sums.get(d, np.zeros(3)) + np.asarray(c, dtype=float)
    docs = sorted(sums)
    return docs, (np.stack([sums[d] for d in docs]) if docs else np.zeros((0, 3)))


def seed_doc_counts(rows: Sequence[ArmResult]) -> np.ndarray:
    """Each (row, document) ``[tp, fp, fn]``, zeros where a row did not score a document:
    (rows, docs, 3), documents sorted as :func:`pooled_doc_counts` sorts them."""
    docs = sorted({d for r in rows for d in r.doc_ids})
    pos = {d: i for i, d in enumerate(docs)}
    out = np.zeros((len(rows), len(docs), 3))
    for s, r in enumerate(rows):
        for d, c in zip(r.doc_ids, r.counts):
            out[s, pos[d]] += np.asarray(c, dtype=float)
    return out


def ci_variance(resample_seeds: bool) -> str:
    """In words, what the intervals' resampling holds."""
    if resample_seeds:
        return ("seeds and documents drawn independently (a start model per seed): the "
                "intervals include start-model and other seed-to-seed variance")
    return ("documents only (seeds summed within each document): the intervals hold the "
            "document sampling, not the variance between seeds or start models")


def seed_spread(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (``ddof=1``; ``None`` for a single seed)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else None)


def field_accuracy(rows: Iterable[ArmResult]) -> tuple[dict[str, float], float]:
    """Share of (seed, document) pairs with each field right, and with every field right."""
    right: dict[str, int] = defaultdict(int)
    seen: dict[str, int] = defaultdict(int)
    all_right, n = 0, 0
    for r in rows:
        for row in r.correct:
            for f, ok in zip(r.fields, row):
                right[f] += int(ok)
                seen[f] += 1
            all_right += int(all(row))
            n += 1
    return {f: right[f] / seen[f] for f in seen}, (all_right / n if n else 0.0)


def cell_summary(by_seed: dict[int, ArmResult], n_boot: int, seed: int,
                 alpha: float, resample_seeds: bool = False) -> dict[str, Any]:
    """The numbers of one (regime, eval_set, round, arm) cell."""
    seeds = sorted(by_seed)
    rows = [by_seed[s] for s in seeds]
    docs, stats = pooled_doc_counts(rows)
    if resample_seeds:
        ci = crossed_bootstrap_ci(seed_doc_counts(rows), f1_of_counts, n_boot=n_boot,
                                  seed=seed, alpha=alpha)
    else:
        ci = bootstrap_ci(stats, f1_of_counts, n_boot=n_boot, seed=seed, alpha=alpha)
    per_seed = [r.f1 for r in rows]
    mean, sd = seed_spread(per_seed)
    acc, doc_acc = field_accuracy(rows)
    op_s = float(np.mean([r.operator_seconds for r in rows]))
    return {
        "n_seeds": len(seeds), "seeds": seeds, "n_docs": len(docs),
        "n_rows": sum(len(r.doc_ids) for r in rows),
        "f1": {"value": ci.value, "low": ci.low, "high": ci.high},
        "f1_per_seed": [{"seed": s, "f1": f} for s, f in zip(seeds, per_seed)],
        "f1_seed_mean": mean, "f1_seed_sd": sd,
        "field_accuracy": acc, "doc_accuracy": doc_acc,
        "reviewed_docs": float(np.mean([r.reviewed_docs for r in rows])),
        "operator_seconds": op_s, "operator_minutes": op_s / 60,
        "train_seconds": float(np.mean([r.train_seconds for r in rows])),
        "train_seconds_total": float(sum(r.train_seconds for r in rows)),
        "model_versions": sorted({r.model_version for r in rows if r.model_version}),
    }


# -- paired comparison ------------------------------------------------------------------------

def paired_outcomes(ref: dict[int, ArmResult], arm: dict[int, ArmResult],
                    shared_ref: bool = False, by_seed: bool = False
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """What both scored, matched by (seed, document).

    Returns per-document ``[tp, fp, fn]`` of the reference and of the arm (summed over the
    matched seeds), the per-(seed, document, field) exact match of each (fields both rows
    have) and the number of matched (seed, document) pairs. With ``shared_ref`` (the floor: a
    start model shared by every seed), a reference scored under one seed only is matched with
    every seed of the arm. With ``by_seed`` the counts are (seeds, docs, 3), not summed over
    the matched seeds.
    """
    def ref_for(s: int) -> ArmResult | None:
        if s in ref:
            return ref[s]
        return next(iter(ref.values())) if shared_ref and len(ref) == 1 else None

    doc_ref: dict[str, np.ndarray] = {}
    doc_arm: dict[str, np.ndarray] = {}
    seed_ref: dict[tuple[int, str], np.ndarray] = {}  # by_seed: (seed, document) -> counts
    seed_arm: dict[tuple[int, str], np.ndarray] = {}
    ok_ref: list[int] = []
    ok_arm: list[int] = []
    pairs = 0
    for s in sorted(arm):
        a, r = arm[s], ref_for(s)
        if r is None:
            continue
        pos = {d: i for i, d in enumerate(r.doc_ids)}
        fields = [(i, r.fields.index(f)) for i, f in enumerate(a.fields) if f in r.fields]
        for i, d in enumerate(a.doc_ids):
            j = pos.get(d)
            if j is None:
                continue
            pairs += 1
            doc_ref[d] = doc_ref.get(d, np.zeros(3)) + np.asarray(r.counts[j], dtype=float)
            doc_arm[d] = doc_arm.get(d, np.zeros(3)) + np.asarray(a.counts[i], dtype=float)
            if by_seed:
                seed_ref[(s, d)] = np.asarray(r.counts[j], dtype=float)
                seed_arm[(s, d)] = np.asarray(a.counts[i], dtype=float)
            ok_ref += [r.correct[j][fr] for _, fr in fields]
            ok_arm += [a.correct[i][fa] for fa, _ in fields]
    docs = sorted(doc_ref)
    if by_seed:
        seeds = sorted({s for s, _ in seed_ref})
        cube = np.zeros((2, len(seeds), len(docs), 3))  # (ref/arm, seeds, docs, 3)
        pos = {d: i for i, d in enumerate(docs)}
        for k, m in enumerate((seed_ref, seed_arm)):
            for (s, d), c in m.items():
                cube[k, seeds.index(s), pos[d]] = c
        return (cube[0], cube[1], np.asarray(ok_ref, dtype=bool),
                np.asarray(ok_arm, dtype=bool), pairs)
    stack = (lambda m: np.stack([m[d] for d in docs]) if docs else np.zeros((0, 3)))
    return (stack(doc_ref), stack(doc_arm), np.asarray(ok_ref, dtype=bool),
            np.asarray(ok_arm, dtype=bool), pairs)


def compare(ref: dict[int, ArmResult], arm: dict[int, ArmResult], n_boot: int, seed: int,
            alpha: float, shared_ref: bool = False,
            resample_seeds: bool = False) -> dict[str, Any]:
    """``arm - ref`` on the same documents: paired F1 interval and McNemar (not yet adjusted);
    with ``resample_seeds`` the interval draws seeds too (the module docstring)."""
    s_ref, s_arm, ok_ref, ok_arm, pairs = paired_outcomes(ref, arm, shared_ref, resample_seeds)
    boot = crossed_paired_bootstrap if resample_seeds else paired_bootstrap
    ci = boot(s_ref, s_arm, f1_of_counts, n_boot=n_boot, seed=seed, alpha=alpha)
    mc = mcnemar(ok_ref, ok_arm)
    return {"n_docs": ci.n_docs, "n_pairs": pairs,
            "f1_diff": {"diff": ci.diff, "low": ci.low, "high": ci.high,
                        "p_le_zero": ci.p_le_zero},
            "mcnemar": mc.export()}


def _judge(c: dict[str, Any], alpha: float) -> None:
    """Set ``significant`` and ``direction`` from the adjusted p and the F1 interval."""
    d, mc = c["f1_diff"], c["mcnemar"]
    up = d["low"] > 0 and mc["c"] > mc["b"]
    down = d["high"] < 0 and mc["b"] > mc["c"]
    c["significant"] = bool(c["n_pairs"] and c["p_holm"] < alpha and (up or down))
    c["direction"] = ("better" if up else "worse") if c["significant"] else "not significant"


def comparisons(cells: Cells, summaries: dict[CellKey, dict], baseline: str, floor: str,
                n_boot: int, seed: int, alpha: float,
                resample_seeds: bool = False) -> list[dict[str, Any]]:
    """Every arm vs the baseline and vs the floor, Holm-adjusted per (regime, set, round)."""
    out: list[dict[str, Any]] = []
    families: dict[tuple[str, str, int], list[dict]] = defaultdict(list)
    for (regime, es, rnd, arm), rows in sorted(cells.items()):
        for role, ref_arm in (("baseline", baseline), ("floor", floor)):
            ref_round = rnd if (regime, es, rnd, ref_arm) in cells else (
                0 if role == "floor" and (regime, es, 0, ref_arm) in cells else None)
            if arm == ref_arm or ref_round is None or (role == "baseline" and arm == floor):
                continue  # floor vs baseline is the baseline's own floor comparison
            c = {"regime": regime, "eval_set": es, "round": rnd, "arm": arm,
                 "reference": ref_arm, "role": role, "reference_round": ref_round,
                 "reviewed_docs": summaries[(regime, es, rnd, arm)]["reviewed_docs"],
                 **compare(cells[(regime, es, ref_round, ref_arm)], rows, n_boot, seed, alpha,
                           shared_ref=role == "floor", resample_seeds=resample_seeds)}
            families[(regime, es, rnd)].append(c)
            out.append(c)
    for fam in families.values():
        tested = [c for c in fam if c["n_pairs"]]
        for c, p in zip(tested, holm([c["mcnemar"]["p_value"] for c in tested])):
            c["p_holm"], c["family_size"] = p, len(tested)
        for c in fam:
            c.setdefault("p_holm", 1.0)
            c.setdefault("family_size", len(tested))
            _judge(c, alpha)
    return out


# -- verdicts and words -----------------------------------------------------------------------

def _fmt_p(p: float) -> str:
    return "p<0.0001" if p < 1e-4 else f"p={p:.2g}"


def _fmt_ci(lo: float, hi: float, signed: bool = False) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"[{f.format(lo)}, {f.format(hi)}]"


def _fmt_diff(c: dict[str, Any]) -> str:
    d = c["f1_diff"]
    return f"{d['diff']:+.3f} {_fmt_ci(d['low'], d['high'], True)}"


def _fmt_n(x: float) -> str:
    return str(round(x)) if abs(x - round(x)) < 0.05 else f"{x:.1f}"


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _words(es: str) -> str:
    return EVAL_SET_WORDS.get(es, es)


MIN_GAP = 0.02
"""Smallest ceiling-minus-floor F1 for which "share of the gap closed" is reported."""


def verdict(regime: str, es: str, rnd: int, summaries: dict[CellKey, dict],
            comps: list[dict], baseline: str, floor: str,
            references: Sequence[str], ceiling: str = CEILING) -> dict[str, Any]:
    """Which arm is best in one (regime, eval_set, round), and how it stands to the baseline."""
    here = {a: s for (g, e, r, a), s in summaries.items() if (g, e, r) == (regime, es, rnd)}
    mine = [c for c in comps if (c["regime"], c["eval_set"], c["round"]) == (regime, es, rnd)]
    vs_base = {c["arm"]: c for c in mine if c["role"] == "baseline"}
    vs_floor = {c["arm"]: c for c in mine if c["role"] == "floor"}
    candidates = [a for a in arm_order(here) if a != floor and a not in references]
    best = max(candidates, key=lambda a: (here[a]["f1"]["value"], a == baseline), default=None)
    others = [a for a in candidates if a != baseline and a in vs_base]
    challenger = max(others, key=lambda a: vs_base[a]["f1_diff"]["diff"], default=None)
    better = sorted((a for a in others if vs_base[a]["direction"] == "better"),
                    key=lambda a: -vs_base[a]["f1_diff"]["diff"])
    worse = [a for a in others if vs_base[a]["direction"] == "worse"]
    learners = [a for a in arm_order(here) if a != floor and a in vs_floor]
    floor_cell = here.get(floor) or summaries.get((regime, es, 0, floor))  # it never learns
    v: dict[str, Any] = {
        "regime": regime, "eval_set": es, "round": rnd, "arms": arm_order(here),
        "best_arm": best, "best_f1": here[best]["f1"] if best else None,
        "baseline": baseline if baseline in here else None,
        "baseline_f1": here[baseline]["f1"] if baseline in here else None,
        "challenger": challenger,
        "challenger_vs_baseline": vs_base.get(challenger) if challenger else None,
        "beats_baseline": better, "worse_than_baseline": worse,
        # the ablations and the ceiling against the baseline: reported, never the answer
        "references_vs_baseline": {a: vs_base[a]["direction"] for a in arm_order(here)
                                   if a in references and a in vs_base},
        "winner_vs_baseline": vs_base[better[0]] if better else None,
        "beats_baseline_significantly": bool(better),
        "beats_floor": [a for a in learners if vs_floor[a]["direction"] == "better"],
        "not_beating_floor": [a for a in learners if vs_floor[a]["direction"] != "better"],
        "floor_f1": floor_cell["f1"] if floor_cell else None,
        "ceiling_f1": here[ceiling]["f1"] if ceiling in here else None,
        "gap_closed": {},
        "reviewed_docs": (here.get(baseline) or next(iter(here.values())))["reviewed_docs"],
        "operator_minutes": (here.get(baseline) or next(iter(here.values())))["operator_minutes"],
    }
    lo = (floor_cell or {}).get("f1", {}).get("value")
    hi = (here.get(ceiling) or {}).get("f1", {}).get("value")
    # A share of a gap of a point or two of F1 is noise, not a finding (1800% "closed").
    if lo is not None and hi is not None and hi - lo >= MIN_GAP:
        v["gap_closed"] = {a: (here[a]["f1"]["value"] - lo) / (hi - lo) for a in candidates}
    v["text"] = verdict_text(v, vs_base, vs_floor, floor, ceiling)
    return v


def verdict_text(v: dict[str, Any], vs_base: dict[str, dict], vs_floor: dict[str, dict],
                 floor: str, ceiling: str = CEILING) -> str:
    """One paragraph in plain words for one (regime, eval_set, round) verdict."""
    es, base = _words(v["eval_set"]), v["baseline"]
    when = (f"On {es} after {_fmt_n(v['reviewed_docs'])} reviewed documents "
            f"(about {v['operator_minutes']:.0f} operator-minutes)")
    if v["best_arm"] is None:
        return f"{when}, no arm learning from the reviews was scored."
    if base is None:
        b = v["best_f1"]
        return (f"{when}, the baseline was not run; the best arm is {v['best_arm']} with F1 "
                f"{b['value']:.3f} {_fmt_ci(b['low'], b['high'])}.")
    f = v["baseline_f1"]
    out = [f"{when}, {base} reaches F1 {f['value']:.3f} {_fmt_ci(f['low'], f['high'])}"]
    ch = v["challenger"]
    if v["beats_baseline"]:
        top = v["beats_baseline"][0]
        c = vs_base[top]
        also = [f"{a}, {_fmt_diff(vs_base[a])}" for a in v["beats_baseline"][1:]]
        out[0] += (f"; {top} beats it significantly: {_fmt_diff(c)} "
                   f"(McNemar {_fmt_p(c['p_holm'])} Holm-adjusted)"
                   + (f"; so do {'; '.join(also)}" if also else "") + ".")
    elif ch is not None:
        c = vs_base[ch]
        word = "best" if c["f1_diff"]["diff"] > 0 else "closest"
        out[0] += (f"; no arm beats it significantly ({word}: {ch}, {_fmt_diff(c)}, "
                   f"McNemar {_fmt_p(c['p_holm'])} Holm-adjusted).")
    elif v["references_vs_baseline"]:
        out[0] += "; no other arm learning from these reviews was run."
    else:
        out[0] += "; no other arm was scored against it."
    if v["references_vs_baseline"]:
        said = {"better": "significantly better", "worse": "significantly worse"}
        refs = [f"{a} {_fmt_diff(vs_base[a])} ({said.get(d, 'not significant')})"
                for a, d in v["references_vs_baseline"].items()]
        out.append(f"References (they use gold the reviews do not give) against {base}: "
                   + "; ".join(refs) + ".")
    if v["worse_than_baseline"]:
        out.append(f"Significantly worse than {base}: "
                   + ", ".join(f"{a} ({_fmt_diff(vs_base[a])})"
                               for a in v["worse_than_baseline"]) + ".")
    if v["floor_f1"] is not None and (v["beats_floor"] or v["not_beating_floor"]):
        fl = v["floor_f1"]["value"]
        if not v["not_beating_floor"]:
            out.append(f"Every arm beats the start model ({floor}, F1 {fl:.3f}) significantly.")
        elif not v["beats_floor"]:
            out.append(f"No arm beats the start model ({floor}, F1 {fl:.3f}) significantly.")
        else:
            out.append(f"Not significantly better than the start model ({floor}, F1 {fl:.3f}): "
                       f"{_join(v['not_beating_floor'])}.")
    if v["gap_closed"] and v["ceiling_f1"] is not None:
        names = [a for a in (base, v["best_arm"]) if a in v["gap_closed"]]
        closed = ", ".join(f"{a} {v['gap_closed'][a]:.0%}" for a in dict.fromkeys(names))
        out.append(f"Training on gold labels ({ceiling}) reaches {v['ceiling_f1']['value']:.3f}; "
                   f"share of the start-to-gold gap closed: {closed}.")
    return " ".join(out)


def overoptimisation(cells: Cells, summaries: dict[CellKey, dict], extras: dict,
                     n_boot: int, seed: int, alpha: float) -> list[dict[str, Any]]:
    """Arms whose F1 fell from its peak while mean reward and KL kept rising (Gao et al.)."""
    series: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for (regime, es, rnd, arm) in summaries:
        x = extras.get((regime, arm, rnd), {})
        if "mean_reward" in x and kl_of(x) is not None:
            series[(regime, es, arm)].append(rnd)
    notes = []
    for (regime, es, arm), rounds in sorted(series.items()):
        rounds.sort()
        if len(rounds) < 2:
            continue
        f1 = [summaries[(regime, es, r, arm)]["f1"]["value"] for r in rounds]
        rew = [extras[(regime, arm, r)]["mean_reward"] for r in rounds]
        kl = [v for r in rounds if (v := kl_of(extras[(regime, arm, r)])) is not None]
        p = int(np.argmax(f1))
        last = len(rounds) - 1
        if p == last or not (f1[last] < f1[p] and rew[last] > rew[p] and kl[last] > kl[p]):
            continue
        drop = compare(cells[(regime, es, rounds[p], arm)], cells[(regime, es, rounds[last], arm)],
                       n_boot, seed, alpha)["f1_diff"]
        sig = drop["high"] < 0
        text = (f"{arm} on {_words(es)}: F1 peaked at round {rounds[p]} ({f1[p]:.3f}) and fell to "
                f"{f1[last]:.3f} by round {rounds[last]} "
                f"({drop['diff']:+.3f} {_fmt_ci(drop['low'], drop['high'], True)}"
                f"{'' if sig else ', within noise'}) while mean reward rose "
                f"{rew[p]:.3g} → {rew[last]:.3g} and KL {kl[p]:.3g} → {kl[last]:.3g}: "
                "the policy is optimising the reward model past the task (over-optimisation, "
                f"Gao et al. 2022); prefer the round-{rounds[p]} model or a larger KL coefficient.")
        notes.append({"regime": regime, "eval_set": es, "arm": arm, "rounds": rounds,
                      "f1": f1, "mean_reward": rew, "kl": kl, "peak_round": rounds[p],
                      "drop": drop, "significant": sig, "text": text})
    return notes


def answer(verdicts: list[dict], last: dict[tuple[str, str], int], baseline: str,
           regimes: list[str]) -> list[str]:
    """The headline: is the baseline enough, per regime, at each set's last round?"""
    out = []
    per_regime = {}
    for regime in regimes:
        finals = [v for v in verdicts if v["regime"] == regime
                  and v["round"] == last[(regime, v["eval_set"])] and v["baseline"]]
        wins = {v["eval_set"]: v["beats_baseline"] for v in finals if v["beats_baseline"]}
        if not finals:
            text = f"{baseline} was not run, so whether it is enough cannot be answered."
        elif not wins:
            text = (f"{baseline} is enough here: no arm learns significantly more from the same "
                    f"reviews on any evaluation set at the last round.")
        else:
            text = (f"{baseline} is not enough: " + "; ".join(
                f"on {_words(es)} {_join(arms)} beat{'s' if len(arms) == 1 else ''} it "
                "significantly" for es, arms in wins.items()) + " at the last round.")
        if finals:  # a regime the baseline did not run in has no answer to set beside
            per_regime[regime] = wins
        out.append(text if len(regimes) == 1 else f"Under the {regime} regime: {text}")
    if len(per_regime) > 1:
        distinct = {tuple(sorted((k, tuple(v)) for k, v in w.items()))
                    for w in per_regime.values()}
        out.insert(0, "The answer depends on the feedback regime." if len(distinct) > 1 else
                   "The answer is the same under every feedback regime.")
    return out


def summary_lines(verdicts: list[dict], notes: list[dict], last: dict[tuple[str, str], int],
                  baseline: str, regimes: list[str]) -> list[str]:
    """The plain-words summary: the answer, the last round per set, where earlier rounds
    differed, and over-optimisation notes."""
    lines = answer(verdicts, last, baseline, regimes)
    for regime in regimes:
        prefix = f"[{regime}] " if len(regimes) > 1 else ""
        mine = [v for v in verdicts if v["regime"] == regime]
        for es in eval_set_order(v["eval_set"] for v in mine):
            final = next(v for v in mine if v["eval_set"] == es and v["round"] == last[(regime, es)])
            lines.append(prefix + final["text"])
            earlier = [v for v in mine if v["eval_set"] == es and 0 < v["round"] < final["round"]
                       and v["beats_baseline"] != final["beats_baseline"]]
            for v in sorted(earlier, key=lambda v: v["round"]):
                top = v["winner_vs_baseline"]
                who = (f"{_join(v['beats_baseline'])} beat {baseline} significantly "
                       f"({top['arm']} {_fmt_diff(top)})" if top
                       else f"no arm beat {baseline} significantly")
                lines.append(f"{prefix}Earlier on {_words(es)}, at round {v['round']} "
                             f"({_fmt_n(v['reviewed_docs'])} reviewed documents), {who}.")
    lines += [n["text"] for n in notes if n["significant"]]  # a fall within noise: JSON only
    return lines


def last_rounds(cells: Cells, baseline: str) -> dict[tuple[str, str], int]:
    """Per (regime, eval_set): the baseline's last round, or the last of any arm without it."""
    any_arm: dict[tuple[str, str], int] = {}
    base: dict[tuple[str, str], int] = {}
    for (regime, es, rnd, arm) in cells:
        any_arm[(regime, es)] = max(any_arm.get((regime, es), rnd), rnd)
        if arm == baseline:
            base[(regime, es)] = max(base.get((regime, es), rnd), rnd)
    return {k: base.get(k, r) for k, r in any_arm.items()}


# -- the whole analysis -----------------------------------------------------------------------

def analyse(results: Sequence[ArmResult], baseline: str = "sft", floor: str = "none",
            n_boot: int = 1000, seed: int = 0, *, alpha: float = 0.05,
            references: Sequence[str] = DEFAULT_REFERENCES,
            ceiling: str = CEILING, resample_seeds: bool = False) -> dict[str, Any]:
    """Every number of the report, JSON-ready (see the module docstring for the method).

    Keys: ``method`` (baseline, floor, references, ceiling, n_boot, seed, alpha, ci,
    resample_seeds, ci_variance);
    ``regimes``, ``eval_sets``, ``arms``, ``rounds``, ``fields``;
    ``last_round`` (per regime and set); ``cells`` (one per regime, set, round, arm);
    ``comparisons`` (arm vs baseline and vs floor); ``verdicts`` (per regime, set, round);
    ``overoptimisation`` (notes); ``forgetting`` (``kvloop.compare.forgetting``: seen-vendor
    F1 after minus before, per arm and round, when there is a seen-vendor set); ``summary``
    (plain-words sentences).
    """
    cells = group_cells(results)
    summaries = {k: cell_summary(v, n_boot, seed, alpha, resample_seeds)
                 for k, v in sorted(cells.items())}
    by_training: dict[tuple[str, str, int], list[ArmResult]] = defaultdict(list)
    for (regime, _es, rnd, arm), rows in cells.items():
        by_training[(regime, arm, rnd)] += rows.values()
    extras = {k: numeric_extras(v) for k, v in by_training.items()}
    for (regime, _es, rnd, arm), s in summaries.items():
        s["extras"] = extras[(regime, arm, rnd)]
    comps = comparisons(cells, summaries, baseline, floor, n_boot, seed, alpha,
                        resample_seeds)
    regimes = sorted({k[0] for k in cells})
    last = last_rounds(cells, baseline)
    verdicts = [verdict(regime, es, rnd, summaries, comps, baseline, floor, references, ceiling)
                for regime, es, rnd in sorted({k[:3] for k in cells})]
    notes = overoptimisation(cells, summaries, extras, n_boot, seed, alpha)
    cell_list = [{"regime": g, "eval_set": e, "round": r, "arm": a, **s}
                 for (g, e, r, a), s in summaries.items()]
    forgot = forgetting(cell_list, comps)
    summary = summary_lines(verdicts, notes, last, baseline, regimes) if cells else []
    summary += [line for g in regimes
                if (line := forgetting_sentence(forgot, g, last.get((g, SEEN)), references))]
    return {
        "method": {"baseline": baseline, "floor": floor, "references": list(references),
                   "ceiling": ceiling, "n_boot": n_boot, "seed": seed, "alpha": alpha,
                   "ci": 1 - alpha, "resample_seeds": resample_seeds,
                   "ci_variance": ci_variance(resample_seeds)},
        "regimes": regimes,
        "eval_sets": eval_set_order(k[1] for k in cells),
        "arms": arm_order(k[3] for k in cells),
        "rounds": sorted({k[2] for k in cells}),
        "fields": list(dict.fromkeys(f for r in results for f in r.fields)),
        "last_round": [{"regime": g, "eval_set": e, "round": r} for (g, e), r in sorted(last.items())],
        "cells": cell_list,
        "comparisons": comps,
        "verdicts": verdicts,
        "overoptimisation": notes,
        "forgetting": forgot,
        "summary": summary,
    }
