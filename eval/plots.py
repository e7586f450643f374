"""The report's figures (matplotlib, Agg backend), returned as base64 data URIs.

Every figure carries a footer naming the data and the model(s) it was made from, so a plot
copied out of the report still says where it came from.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display here, and the report embeds images anyway
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from eval.evaluate import RunEval

FIGSIZE = (5.4, 3.6)  # one size for the three headline plots, so they line up in a row
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def run_label(run: RunEval, many_ocr: bool = False) -> str:
    return f"{run.model} [{run.ocr} OCR]" if many_ocr else run.model


def _labels(runs: Sequence[RunEval]) -> list[str]:
    many = len({r.ocr for r in runs}) > 1
    return [run_label(r, many) for r in runs]


def provenance(runs: Sequence[RunEval]) -> str:
    """One line saying which data, OCR and models a figure shows."""
    data = sorted({r.data for r in runs})
    ocr = sorted({r.ocr for r in runs})
    models = list(dict.fromkeys(r.model for r in runs))
    n = max((r.metrics["n_docs"] for r in runs), default=0)
    return (f"data: {', '.join(data)} ({n} docs, {'/'.join(ocr)} OCR) · "
            f"model: {', '.join(models)}")


def to_data_uri(fig: Figure, fmt: str = "png") -> str:
    """Serialise and close a figure; ``fmt`` is ``png`` or ``svg``."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110, bbox_inches="tight")
    plt.close(fig)
    mime = "image/svg+xml" if fmt == "svg" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def add_footer(fig: Figure, text: str) -> None:
    """A provenance line under a figure (shared by every report that makes figures)."""
    # Below the axes (va="top" at y=0): bbox_inches="tight" grows the image to include it.
    fig.text(0.01, -0.01, text, fontsize=8, color="#555", ha="left", va="top")


def _footer(fig: Figure, runs: Sequence[RunEval]) -> None:
    add_footer(fig, provenance(runs))


def field_f1(runs: Sequence[RunEval], fields: Sequence[str]) -> Figure:
    """Grouped bars: strict task-3 F1 per field and overall, one colour per run."""
    groups = ["overall", *fields]
    fig, ax = plt.subplots(figsize=FIGSIZE)
    width = 0.8 / max(len(runs), 1)
    for i, (run, label) in enumerate(zip(runs, _labels(runs))):
        s, lz = run.metrics["strict"], run.metrics["lenient"]
        vals = [s["overall"]["f1"]] + [s["fields"][f]["f1"] for f in fields]
        lens = [lz["overall"]["f1"]] + [lz["fields"][f]["f1"] for f in fields]
        xs = [g + (i - (len(runs) - 1) / 2) * width for g in range(len(groups))]
        color = PALETTE[i % len(PALETTE)]
        ax.bar(xs, lens, width * 0.92, color=color, alpha=0.28)
        bars = ax.bar(xs, vals, width * 0.92, color=color, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(range(len(groups)), groups)
    labels = _labels(runs)
    ncols = 1 if max(map(len, labels), default=0) > 24 else min(len(runs), 3)
    rows = -(-len(runs) // ncols)
    ax.set_ylim(0, 1.18 + 0.1 * rows)  # head-room for the legend above the bars
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("F1 (SROIE task 3)")
    ax.set_title("F1 per field: solid = strict, pale = lenient", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", ncols=ncols, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    _footer(fig, runs)
    return fig


def coverage_precision(runs: Sequence[RunEval], field: str | None = None,
                       ax: Axes | None = None, section: str = "savings") -> Figure:
    """Auto-accept curve: coverage (x) vs precision of accepted answers (y), per run.

    ``section``: ``savings`` (answers ranked by confidence) or ``straight_through`` (by the
    correctness model's P(correct); runs without one are left out)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=FIGSIZE)
    else:
        fig = ax.figure  # type: ignore[assignment]
    runs = [r for r in runs if r.metrics.get(section)]
    for i, (run, label) in enumerate(zip(runs, _labels(runs))):
        sv = run.metrics[section]
        s = sv["overall"] if field is None else sv["fields"][field]
        xs = [0.0] + [p["coverage"] for p in s["curve"]]
        ys = [s["curve"][0]["precision"] if s["curve"] else 1.0] + \
            [p["precision"] for p in s["curve"]]
        ax.step(xs, ys, where="post", color=PALETTE[i % len(PALETTE)], label=label)
        t99 = s["targets"].get("0.99", {})
        if t99.get("threshold") is not None:
            ax.plot([t99["coverage"]], [t99["precision"]], "o", color=PALETTE[i % len(PALETTE)],
                    ms=5)
    for t, style in ((0.99, "--"), (0.995, ":")):
        ax.axhline(t, color="#444", ls=style, lw=0.8)
        ax.text(1.0, t, f" {t:.1%}", fontsize=7, va="center", ha="left", color="#444",
                transform=ax.get_yaxis_transform())
    ax.set_xlim(0, 1)
    lo = min([0.98] + [p["precision"] for r in runs
                       for p in (r.metrics[section]["overall"] if field is None
                                 else r.metrics[section]["fields"][field])["curve"]])
    # Zoom on the observed range: the interesting part is near the 99% lines.
    ax.set_ylim(max(0.0, lo - 0.1 * (1 - lo) - 0.005), 1.0 + 0.05 * (1 - lo) + 0.002)
    ax.set_xlabel("coverage (share of answers auto-accepted)")
    ax.set_ylabel("precision of accepted")
    score = "confidence" if section == "savings" else "P(correct)"
    ax.set_title(f"Auto-accept above a {score} threshold ({field or 'all fields'})",
                 fontsize=10)
    ax.legend(fontsize=7, loc="lower left", frameon=False)
    ax.grid(alpha=0.3)
    if field is None:
        _footer(fig, runs)
    return fig


def coverage_precision_fields(runs: Sequence[RunEval], fields: Sequence[str],
                              section: str = "savings") -> Figure:
    """The auto-accept curve of each field, as small multiples."""
    cols = 2
    rows = -(-len(fields) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(10, 3.3 * rows), squeeze=False)
    for ax, f in zip(axes.ravel(), fields):
        coverage_precision(runs, f, ax=ax, section=section)
        ax.set_title(f, fontsize=10)
    for ax in axes.ravel()[len(fields):]:
        ax.set_visible(False)
    fig.tight_layout()
    _footer(fig, runs)
    return fig


def reliability(runs: Sequence[RunEval]) -> Figure:
    """Reliability diagram: accuracy per confidence bin against the diagonal."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.plot([0, 1], [0, 1], color="#888", ls="--", lw=0.8, label="perfect calibration")
    for i, (run, label) in enumerate(zip(runs, _labels(runs))):
        c = run.metrics["calibration"]["overall"]
        pts = [(b["confidence"], b["accuracy"], b["count"]) for b in c["bins"] if b["count"]]
        if not pts:
            continue
        sizes = [12 + 120 * n / max(p[2] for p in pts) for *_, n in pts]
        color = PALETTE[i % len(PALETTE)]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", color=color, lw=1,
                label=f"{label} (ECE {c['ece']:.3f})")
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=sizes, color=color, alpha=0.6)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence (bin mean)")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability of field confidence (dot size = answers)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    ax.grid(alpha=0.3)
    _footer(fig, runs)
    return fig


def recall_at_k(runs: Sequence[RunEval]) -> Figure:
    """Oracle recall@k: how often the right value is among the top-k candidates."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for i, (run, label) in enumerate(zip(runs, _labels(runs))):
        r = run.metrics["oracle_recall"]["overall"]
        ks = [int(k[1:]) for k in r]
        ax.plot(ks, list(r.values()), "o-", color=PALETTE[i % len(PALETTE)], label=label)
    ax.set_xlabel("k (candidates shown)")
    ax.set_ylabel("oracle recall@k (strict)")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(range(1, 6))
    ax.set_title("Would an alternative candidate have fixed it?", fontsize=10)
    ax.legend(fontsize=7, loc="lower right", frameon=False)
    ax.grid(alpha=0.3)
    _footer(fig, runs)
    return fig
