"""Write a comparison's report: ``report.html``, ``report.json`` and ``summary.md``.

The page follows ``eval.report``'s conventions: no scripts and no external resources (figures
are base64 PNG ``data:`` URIs from matplotlib's Agg backend, CSS inline), the words a reader
needs first (``analysis["summary"]``), then the F1 table, the figures and the depth. Each
figure is drawn from ``kvloop.compare.analysis.analyse``'s dict only, so a report rebuilt
from ``results.jsonl`` shows the same numbers. A figure whose data is absent (no reward model
accuracy logged, no KL) is skipped with a note saying why, never an error.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from eval import plots
from eval.report import CSS, html_figure, html_table
from kvloop.compare.analysis import CEILING, kl_of
from kvloop.compare.forgetting import HEAD as FORGETTING_HEAD
from kvloop.compare.forgetting import forgetting_rows
from kvloop.compare.records import ArmResult
from kvloop.compare.tuning import TABLE_HEAD, table_cells, table_markdown, table_note

EXTRA_COLORS = ["#e377c2", "#bcbd22", "#aec7e8", "#ff9896", "#98df8a", "#c5b0d5", "#c49c94"]
UP, DOWN = "▲", "▼"
CSS_EXTRA = ".skipped{color:#7a4b00;font-size:12px} pre.config{font-size:11px;background:" \
            "#f7f7f7;padding:6px;overflow-x:auto}"

Figures = list[tuple[str, str, str]]  # (name, data URI or "", caption or the reason skipped)


# -- reading the analysis ---------------------------------------------------------------------

def _cells(analysis: dict, regime: str, eval_set: str | None = None) -> list[dict]:
    return [c for c in analysis["cells"] if c["regime"] == regime
            and (eval_set is None or c["eval_set"] == eval_set)]


def _cell(analysis: dict, regime: str, es: str, rnd: int, arm: str) -> dict | None:
    return next((c for c in _cells(analysis, regime, es)
                 if c["round"] == rnd and c["arm"] == arm), None)


def _last(analysis: dict, regime: str, es: str) -> int:
    return next(x["round"] for x in analysis["last_round"]
                if (x["regime"], x["eval_set"]) == (regime, es))


def _vs_baseline(analysis: dict, regime: str, es: str, rnd: int, arm: str) -> dict | None:
    return next((c for c in analysis["comparisons"] if c["role"] == "baseline"
                 and (c["regime"], c["eval_set"], c["round"], c["arm"]) == (regime, es, rnd, arm)),
                None)


def arm_style(analysis: dict, arm: str) -> dict[str, Any]:
    """One colour per arm for every figure; the floor grey and the ceiling black, dashed."""
    if arm == analysis["method"]["floor"]:
        return {"color": "#7f7f7f", "ls": "--"}
    if arm == CEILING:
        return {"color": "#222222", "ls": "--"}
    others = [a for a in analysis["arms"] if a not in (analysis["method"]["floor"], CEILING)]
    colors = plots.PALETTE + EXTRA_COLORS
    return {"color": colors[others.index(arm) % len(colors)], "ls": "-"}


def _footer_text(analysis: dict, config: dict, regime: str) -> str:
    seeds = sorted({s for c in _cells(analysis, regime) for s in c["seeds"]})
    parts = [f"comparison: {config.get('name', '?')}", f"data: {config.get('data', '?')}",
             f"seeds: {', '.join(map(str, seeds))}"]
    if len(analysis["regimes"]) > 1 or regime != "default":
        parts.append(f"regime: {regime}")
    return " · ".join(parts)


# -- figures ----------------------------------------------------------------------------------

def _panels(n: int, height: float = plots.FIGSIZE[1]) -> tuple[Figure, list]:
    fig, axes = plt.subplots(1, n, figsize=(plots.FIGSIZE[0] * n, height), squeeze=False)
    return fig, list(axes[0])


def f1_curves(analysis: dict, regime: str, x: str = "reviewed_docs") -> Figure:
    """Pooled F1 (95% CI band) per arm against the budget, one panel per evaluation set."""
    sets = analysis["eval_sets"]
    fig, axes = _panels(len(sets))
    for ax, es in zip(axes, sets):
        for arm in analysis["arms"]:
            pts = sorted((c for c in _cells(analysis, regime, es) if c["arm"] == arm),
                         key=lambda c: c["round"])
            if not pts:
                continue
            st = arm_style(analysis, arm)
            xs = [c[x] for c in pts]
            ys = [c["f1"]["value"] for c in pts]
            if len(pts) == 1 and arm == analysis["method"]["floor"]:
                ax.axhline(ys[0], color=st["color"], ls=st["ls"], lw=1, label=arm)
                continue
            ax.plot(xs, ys, marker="o", ms=3, lw=1.2, color=st["color"], ls=st["ls"], label=arm)
            ax.fill_between(xs, [c["f1"]["low"] for c in pts], [c["f1"]["high"] for c in pts],
                            color=st["color"], alpha=0.12, lw=0)
        ax.set_title(es, fontsize=10)
        ax.set_xlabel("reviewed documents" if x == "reviewed_docs" else "operator-minutes")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("F1 (lenient, pooled over seeds)")
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


def field_accuracy_bars(analysis: dict, regime: str) -> Figure:
    """Per-field accuracy per arm at each evaluation set's last round."""
    sets = analysis["eval_sets"]
    fig, axes = _panels(len(sets))
    for ax, es in zip(axes, sets):
        rnd = _last(analysis, regime, es)
        cells = [c for a in analysis["arms"] if (c := _cell(analysis, regime, es, rnd, a))]
        fields = list(dict.fromkeys(f for c in cells for f in c["field_accuracy"]))
        width = 0.8 / max(len(cells), 1)
        for i, c in enumerate(cells):
            xs = [g + (i - (len(cells) - 1) / 2) * width for g in range(len(fields))]
            ax.bar(xs, [c["field_accuracy"].get(f, 0.0) for f in fields], width * 0.92,
                   color=arm_style(analysis, c["arm"])["color"], label=c["arm"])
        ax.set_xticks(range(len(fields)), fields, fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{es}, round {rnd}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("field accuracy (exact match)")
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


Getter = Callable[[dict], float | None]


def _extra_series(analysis: dict, regime: str, get: Getter, es: str | None = None
                  ) -> dict[str, list[tuple[dict, float]]]:
    """Per arm, (cell, value) for its cells (one eval set: the first unless ``es``) whose
    extras have the value ``get`` reads, in round order."""
    es = es or analysis["eval_sets"][0]
    out: dict[str, list[tuple[dict, float]]] = {}
    for c in sorted(_cells(analysis, regime, es), key=lambda c: c["round"]):
        v = get(c["extras"])
        if v is not None:
            out.setdefault(c["arm"], []).append((c, v))
    return out


def reward_accuracy(analysis: dict, regime: str) -> Figure | None:
    """Reward-model pairwise accuracy per round (``extras["reward_pair_acc"]``)."""
    series = _extra_series(analysis, regime, lambda x: x.get("reward_pair_acc"))
    if not series:
        return None
    # Arms reading the same round's reward model log the same accuracy: one line for them.
    lines: dict[tuple, list[str]] = {}
    for arm in (a for a in analysis["arms"] if a in series):
        pts = tuple((c["round"], v) for c, v in series[arm])
        lines.setdefault(pts, []).append(arm)
    fig, ax = plt.subplots(figsize=plots.FIGSIZE)
    for pts, arms in lines.items():
        st = arm_style(analysis, arms[0])
        ax.plot([r for r, _ in pts], [v for _, v in pts], marker="o", color=st["color"],
                ls=st["ls"], label=", ".join(arms))
    ax.axhline(0.5, color="#888", lw=0.8, ls=":")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("pairwise accuracy (chosen > rejected)")
    ax.set_ylim(0.4, 1.02)
    ax.set_title("Reward model: held-out pairwise accuracy", fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    ax.grid(alpha=0.3)
    return fig


def overoptimisation_plot(analysis: dict, regime: str) -> Figure | None:
    """Dev F1 against KL and against mean reward, per arm, rounds annotated (Gao et al. 2022)."""
    es = "dev" if "dev" in analysis["eval_sets"] else analysis["eval_sets"][0]
    kl = _extra_series(analysis, regime, kl_of, es)
    rw = _extra_series(analysis, regime, lambda x: x.get("mean_reward"), es)
    arms = [a for a in analysis["arms"] if a in kl or a in rw]
    if not arms:
        return None
    fig, axes = _panels(2)
    for ax, series, label in ((axes[0], kl, "KL to the start policy"),
                              (axes[1], rw, "mean reward (reward model)")):
        for arm in arms:
            pts = series.get(arm, [])
            if not pts:
                continue
            st = arm_style(analysis, arm)
            cells = [c for c, _ in pts]
            xs = [v for _, v in pts]
            ys = [c["f1"]["value"] for c in cells]
            ax.plot(xs, ys, marker="o", color=st["color"], ls=st["ls"], label=arm)
            for c, xv, yv in zip(cells, xs, ys):
                ax.annotate(f"r{c['round']}", (xv, yv), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{es} F1")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.suptitle("Over-optimisation: F1 should not fall while KL and reward rise", fontsize=10)
    return fig


def wall_time(analysis: dict, regime: str) -> Figure | None:
    """Training minutes per arm per round (mean over seeds), grouped by round."""
    es = analysis["eval_sets"][0]
    cells = [c for c in _cells(analysis, regime, es) if c["train_seconds"] > 0]
    if not cells:
        return None
    rounds = sorted({c["round"] for c in cells})
    arms = [a for a in analysis["arms"] if any(c["arm"] == a for c in cells)]
    fig, ax = plt.subplots(figsize=(max(plots.FIGSIZE[0], 0.5 * len(arms) * len(rounds)),
                                    plots.FIGSIZE[1]))
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        by_round = {c["round"]: c["train_seconds"] / 60 for c in cells if c["arm"] == arm}
        xs = [g + (i - (len(arms) - 1) / 2) * width for g in range(len(rounds))]
        ax.bar(xs, [by_round.get(r, 0.0) for r in rounds], width * 0.92,
               color=arm_style(analysis, arm)["color"], label=arm)
    ax.set_xticks(range(len(rounds)), [f"round {r}" for r in rounds])
    ax.set_ylabel("training minutes (mean over seeds)")
    ax.set_title("Wall time of each arm's training", fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


SINGLE_PANEL = {"reward_accuracy", "wall_time"}
SKIP_REASONS = {
    "reward_accuracy": "no row carries extras['reward_pair_acc'] (no arm trained a reward "
                       "model, or the runner did not log it)",
    "overoptimisation": "no row carries extras['kl'] (or 'mean_kl') or extras['mean_reward'] "
                        "(no RL arm, or the runner did not log them)",
    "wall_time": "every train_seconds is 0 (not measured)",
}


def figures(analysis: dict, config: dict, regime: str) -> Figures:
    """Every figure of one regime: (name, data URI, caption) or (name, "", why skipped)."""
    if not _cells(analysis, regime):
        return []
    ci = f"{analysis['method']['ci']:.0%}"
    makers: list[tuple[str, Callable[[], Figure | None], str]] = [
        ("f1_vs_reviewed", lambda: f1_curves(analysis, regime, "reviewed_docs"),
         (f"F1 pooled over seeds against reviewed documents; bands: {ci} bootstrap CI over "
          "documents.")),
        ("f1_vs_minutes", lambda: f1_curves(analysis, regime, "operator_minutes"),
         "F1 against the operator-minutes those reviews cost (effort model)."),
        ("field_accuracy", lambda: field_accuracy_bars(analysis, regime),
         "Per-field accuracy at the last round, over (seed, document) pairs."),
        ("reward_accuracy", lambda: reward_accuracy(analysis, regime),
         "Reward model pairwise accuracy per round."),
        ("overoptimisation", lambda: overoptimisation_plot(analysis, regime),
         ("F1 against KL and mean reward, rounds annotated: F1 falling while both rise is "
          "over-optimisation of the reward model (Gao et al. 2022).")),
        ("wall_time", lambda: wall_time(analysis, regime), "Training wall time per round."),
    ]
    out: Figures = []
    foot = _footer_text(analysis, config, regime)
    for name, make, caption in makers:
        fig = make()
        if fig is None:
            out.append((name, "", SKIP_REASONS.get(name, "no data")))
            continue
        plots.add_footer(fig, foot)
        out.append((name, plots.to_data_uri(fig), f"{caption} {foot}"))
    return out


# -- tables -----------------------------------------------------------------------------------

def _mark(analysis: dict, regime: str, es: str, rnd: int, arm: str) -> str:
    c = _vs_baseline(analysis, regime, es, rnd, arm)
    return {"better": f" {UP}", "worse": f" {DOWN}"}.get(c["direction"], "") if c else ""


def f1_grid(analysis: dict, regime: str, es: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows (arm x round) of ``F1 [low, high]`` cells, with ▲/▼ vs the baseline."""
    rounds = sorted({c["round"] for c in _cells(analysis, regime, es)})
    head = ["arm"]
    for r in rounds:
        refs = set(analysis["method"]["references"])  # the ceiling reads every pool gold
        cs = [c for c in _cells(analysis, regime, es) if c["round"] == r
              and c["arm"] not in refs] or [c for c in _cells(analysis, regime, es)
                                             if c["round"] == r]
        docs = max(c["reviewed_docs"] for c in cs)
        head.append(f"round {r} ({docs:.0f} docs)")
    rows = []
    for arm in analysis["arms"]:
        row = [arm]
        for r in rounds:
            c = _cell(analysis, regime, es, r, arm)
            row.append("–" if c is None else
                       f"{c['f1']['value']:.3f} [{c['f1']['low']:.3f}, {c['f1']['high']:.3f}]"
                       + _mark(analysis, regime, es, r, arm))
        if any(v != "–" for v in row[1:]):
            rows.append(row)
    return head, rows


def _legend(analysis: dict) -> str:
    a = analysis["method"]
    return (f"F1 pooled over seeds [{a['ci']:.0%} bootstrap CI over documents]; {UP}/{DOWN}: "
            f"significantly better/worse than {a['baseline']} (McNemar p < {a['alpha']} after "
            "Holm adjustment within the round, and the paired bootstrap CI of the F1 "
            "difference excludes 0).")


def comparison_rows(analysis: dict, regime: str, es: str, rnd: int) -> list[list[str]]:
    rows = []
    for c in analysis["comparisons"]:
        if (c["regime"], c["eval_set"], c["round"]) != (regime, es, rnd):
            continue
        d, m = c["f1_diff"], c["mcnemar"]
        sig = f'<span class="sig">{c["direction"]}</span>' if c["significant"] else "no"
        rows.append([html.escape(c["arm"]), html.escape(f"{c['reference']} ({c['role']})"),
                     f"{d['diff']:+.3f}", f"[{d['low']:+.3f}, {d['high']:+.3f}]",
                     f"{m['b']} / {m['c']}", f"{m['p_value']:.3g}", f"{c['p_holm']:.3g}",
                     sig, str(c["n_docs"]), str(c["n_pairs"])])
    return rows


def seed_rows(analysis: dict, regime: str, es: str, rnd: int) -> list[list[str]]:
    rows = []
    for arm in analysis["arms"]:
        c = _cell(analysis, regime, es, rnd, arm)
        if c is None:
            continue
        sd = "–" if c["f1_seed_sd"] is None else f"{c['f1_seed_sd']:.3f}"
        per = ", ".join(f"{p['seed']}: {p['f1']:.3f}" for p in c["f1_per_seed"])
        rows.append([html.escape(arm), f"{c['f1_seed_mean']:.3f} ± {sd}", html.escape(per),
                     f"{c['doc_accuracy']:.3f}", f"{c['reviewed_docs']:.0f}",
                     f"{c['operator_minutes']:.1f}", f"{c['train_seconds'] / 60:.1f}"])
    return rows


# -- the three files --------------------------------------------------------------------------

def _ci_words(analysis: dict) -> str:
    """Which variance the intervals include (``analysis["method"]["ci_variance"]``)."""
    return analysis["method"].get("ci_variance", "documents only")


def _title(config: dict) -> str:
    return f"kvloop compare: {config.get('name', 'comparison')}"


def render_html(analysis: dict, config: dict,
                regime_figures: dict[str, Figures] | None = None) -> str:
    """The whole page: summary, F1 tables, figures (``regime_figures``, else drawn here),
    comparisons, seeds, config."""
    regimes = analysis["regimes"]
    parts = [f"<h1>{html.escape(_title(config))}</h1>",
             (f'<div class="prov">baseline {html.escape(analysis["method"]["baseline"])} · floor '
              f'{html.escape(analysis["method"]["floor"])} · {analysis["method"]["n_boot"]} '
              f'bootstrap replicates · arms: {html.escape(", ".join(analysis["arms"]))}</div>'),
             '<ul class="takeaways">' + "".join(f"<li>{html.escape(s)}</li>"
                                                for s in analysis["summary"]) + "</ul>"]
    for regime in regimes:
        if len(regimes) > 1:
            parts.append(f"<h2>Regime: {html.escape(regime)}</h2>")
        for es in analysis["eval_sets"]:
            if not _cells(analysis, regime, es):
                continue
            head, rows = f1_grid(analysis, regime, es)
            parts += [f"<h3>F1 on {html.escape(es)}</h3>",
                      html_table(head, [[html.escape(v) for v in r] for r in rows], "headline")]
        parts.append(f'<p class="prov">{html.escape(_legend(analysis))}</p>')
        forgot = forgetting_rows(analysis.get("forgetting", []), regime)
        if forgot:
            parts += [("<h3>New vendors gained, seen vendors forgotten (paired with the start "
                       "model)</h3>"),
                      html_table(FORGETTING_HEAD, [[html.escape(v) for v in r] for r in forgot],
                                 "headline")]
        figs = (regime_figures or {}).get(regime) or figures(analysis, config, regime)
        parts.append('<div class="plots">' + "".join(
            html_figure(uri, cap, "" if n in SINGLE_PANEL else "wide")
            for n, uri, cap in figs if uri) + "</div>")
        parts += [f'<p class="skipped">Figure {html.escape(n)} skipped: {html.escape(why)}.</p>'
                  for n, uri, why in figs if not uri]
        for es in analysis["eval_sets"]:
            if not _cells(analysis, regime, es):
                continue
            rnd = _last(analysis, regime, es)
            parts += [f"<h3>{html.escape(es)}, round {rnd}: paired comparisons</h3>",
                      html_table(["arm", "vs", "F1 diff", "95% CI (paired bootstrap)",
                              "McNemar b / c", "p", "p (Holm)", "significant", "docs",
                              "seed-doc pairs"], comparison_rows(analysis, regime, es, rnd),
                             "detail"),
                      f"<h3>{html.escape(es)}, round {rnd}: seeds and budget</h3>",
                      html_table(["arm", "F1 mean ± sd over seeds", "per seed", "all fields right",
                              "reviewed docs", "operator-min", "train-min"],
                             seed_rows(analysis, regime, es, rnd), "detail")]
    if analysis.get("tuning"):
        parts += ["<h2>Tuning (selection split)</h2>",
                  f"<p class='prov'>{html.escape(table_note(analysis['tuning']))}</p>",
                  html_table(TABLE_HEAD, [[html.escape(v) for v in r]
                                          for r in table_cells(analysis["tuning"])], "detail")]
    parts.append(f"<p class='prov'>Intervals: {html.escape(_ci_words(analysis))}.</p>")
    parts.append("<p class='prov'>b: fields the reference got right and the arm wrong; c: the "
                 "reverse. McNemar's exact test on (seed, document, field) pairs; p (Holm): "
                 "adjusted over every comparison in the same evaluation set and round.</p>")
    parts += ["<h2>Configuration</h2>",
              (f"<pre class='config'>{html.escape(json.dumps(config, indent=1, default=str))}"
               "</pre>")]
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(_title(config))}</title><style>{CSS}{CSS_EXTRA}</style>"
            f"</head><body>{chr(10).join(parts)}</body></html>")


def render_markdown(analysis: dict, config: dict) -> str:
    """The words and a Markdown table of F1 per arm per round, for the README."""
    lines = [f"# {_title(config)}", "", *[f"- {s}" for s in analysis["summary"]], ""]
    many = len(analysis["regimes"]) > 1
    for regime in analysis["regimes"]:
        for es in analysis["eval_sets"]:
            if not _cells(analysis, regime, es):
                continue
            head, rows = f1_grid(analysis, regime, es)
            lines += [f"**F1 on {es}" + (f", {regime} regime" if many else "") + "**", "",
                      "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1),
                      *["| " + " | ".join(r) + " |" for r in rows], ""]
        forgot = forgetting_rows(analysis.get("forgetting", []), regime)
        if forgot:
            lines += ["**Forgetting: seen-vendor F1 after minus before, beside the new-vendor "
                      "gain" + (f", {regime} regime" if many else "") + "**", "",
                      "| " + " | ".join(FORGETTING_HEAD) + " |",
                      "|---|---|" + "---:|" * (len(FORGETTING_HEAD) - 3) + "---|",
                      *["| " + " | ".join(r) + " |" for r in forgot], ""]
    lines += table_markdown(analysis.get("tuning", []))
    lines += [_legend(analysis), "", f"Intervals: {_ci_words(analysis)}.", "",
              "Full report: report.html (every number: report.json)."]
    return "\n".join(lines) + "\n"


def row_summary(r: ArmResult) -> dict[str, Any]:
    """One results row without its per-document arrays (those stay in results.jsonl)."""
    return {"arm": r.arm, "seed": r.seed, "round": r.round, "eval_set": r.eval_set,
            "regime": r.regime, "f1": r.f1, "n_docs": len(r.doc_ids),
            "reviewed_docs": r.reviewed_docs, "operator_seconds": r.operator_seconds,
            "train_seconds": r.train_seconds, "model_version": r.model_version,
            "extras": r.extras}


def write_report(analysis: dict, results: Sequence[ArmResult], config: dict,
                 out_dir: str | Path) -> dict[str, Path]:
    """Write report.html, report.json, summary.md and the figures as PNG files
    (``figures/<regime>-<name>.png``, for a README or slides) into ``out_dir``; returns the
    three reports' paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"html": out / "report.html", "json": out / "report.json", "md": out / "summary.md"}
    regime_figures = {g: figures(analysis, config, g) for g in analysis["regimes"]}
    write_figure_files(regime_figures, out / "figures")
    paths["html"].write_text(render_html(analysis, config, regime_figures), encoding="utf-8")
    paths["json"].write_text(json.dumps(
        {"config": config, "analysis": analysis, "rows": [row_summary(r) for r in results]},
        indent=1, default=str), encoding="utf-8")
    paths["md"].write_text(render_markdown(analysis, config), encoding="utf-8")
    return paths


def write_figure_files(regime_figures: dict[str, Figures], folder: Path) -> list[Path]:
    """Each drawn figure's PNG (decoded from its data URI) as ``<regime>-<name>.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for regime, figs in regime_figures.items():
        for name, uri, _ in figs:
            if uri.startswith("data:image/png;base64,"):
                path = folder / f"{regime}-{name}.png"
                path.write_bytes(base64.b64decode(uri.split(",", 1)[1]))
                written.append(path)
    return written
