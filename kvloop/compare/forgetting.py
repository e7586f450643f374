"""Forgetting in the deployment case: what an arm lost on the vendors the start model knew,
beside what it gained on the vendors it did not.

An arm's **forgetting** at a round is its ``seen-vendor`` F1 minus the start model's on the
same documents (after minus before; negative: it forgot). The start model is the floor arm,
which never changes, so this is the arm's paired comparison with the floor on the seen-vendor
set (``kvloop.compare.analysis.comparisons``): the same paired bootstrap interval over
documents, the same Holm-adjusted McNemar test, "significant" only when both agree. The
**gain** on ``new-vendor`` documents is the same comparison there. Runs without a seen-vendor
set (no ``vendor_split``) have no forgetting rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kvloop.compare.vendor_split import NEW, SEEN

HEAD = ["round (reviewed docs)", "arm", f"{NEW} F1", "gain vs start [95% CI]",
        f"{SEEN} F1", "forgetting: after − before [95% CI]", "forgot?"]


def _floor_comparisons(comparisons: list[dict], es: str) -> dict[tuple, dict]:
    return {(c["regime"], c["round"], c["arm"]): c for c in comparisons
            if c["role"] == "floor" and c["eval_set"] == es}


def forgetting(cells: list[dict], comparisons: list[dict]) -> list[dict[str, Any]]:
    """Per (regime, round, arm) with a seen-vendor comparison against the floor: the F1 on
    both sets, the gain on new vendors and the forgetting on seen vendors (``f1_diff`` dicts:
    ``diff``, ``low``, ``high``), and whether the forgetting is significant."""
    seen, new = _floor_comparisons(comparisons, SEEN), _floor_comparisons(comparisons, NEW)
    f1 = {(c["regime"], c["eval_set"], c["round"], c["arm"]): c["f1"]["value"] for c in cells}
    out = []
    for (regime, rnd, arm), c in sorted(seen.items()):
        if rnd == 0:
            continue
        g = new.get((regime, rnd, arm))
        out.append({
            "regime": regime, "round": rnd, "arm": arm, "reviewed_docs": c["reviewed_docs"],
            "seen_f1": f1.get((regime, SEEN, rnd, arm)), "new_f1": f1.get((regime, NEW, rnd, arm)),
            "forgetting": c["f1_diff"], "forgot": c["direction"] == "worse",
            "improved_seen": c["direction"] == "better",
            "gain": g["f1_diff"] if g else None,
            "gain_significant": bool(g and g["direction"] == "better"),
        })
    return out


def _diff(d: dict | None) -> str:
    return "–" if d is None else f"{d['diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def _f1(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def forgetting_rows(rows: list[dict], regime: str) -> list[list[str]]:
    """The table's rows (:data:`HEAD`) of one regime, by round then arm."""
    out = []
    for r in (r for r in rows if r["regime"] == regime):
        said = ("yes, significantly" if r["forgot"] else
                "no: significantly better" if r["improved_seen"] else "not significantly")
        out.append([f"{r['round']} ({r['reviewed_docs']:.0f})", r["arm"], _f1(r["new_f1"]),
                    _diff(r["gain"]) + (" ▲" if r["gain_significant"] else ""),
                    _f1(r["seen_f1"]), _diff(r["forgetting"]), said])
    return out


def forgetting_sentence(rows: list[dict], regime: str, last: int | None,
                        references: Sequence[str] = ()) -> str | None:
    """One plain-words sentence for the last round: who forgot seen vendors significantly."""
    here = [r for r in rows if r["regime"] == regime and r["round"] == last
            and r["arm"] not in references]
    if not here:
        return None
    forgot = [r for r in here if r["forgot"]]
    worst = min(here, key=lambda r: r["forgetting"]["diff"])
    if not forgot:
        return (f"Seen vendors after {worst['reviewed_docs']:.0f} reviewed documents: no arm "
                f"forgot significantly (largest change: {worst['arm']} "
                f"{_diff(worst['forgetting'])}).")
    return ("Seen vendors after " f"{worst['reviewed_docs']:.0f} reviewed documents: "
            + ", ".join(f"{r['arm']} forgot {_diff(r['forgetting'])}" for r in forgot)
            + " (significant).")
