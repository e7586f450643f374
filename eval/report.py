"""Write the evaluation report: one self-contained HTML page, a JSON file, a Markdown summary.

The HTML has no scripts and no external resources (figures are ``data:`` URIs, CSS is
inline), so it opens offline and can be mailed around. The top of the page is what a reader
deciding on a model needs: the headline table and three plots; the depth follows.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from eval import plots
from eval.evaluate import RunEval
from eval.gallery import GalleryItem

PCT_KEYS = ("0.99", "0.995")


@dataclass
class ReportInput:
    """What the report shows; ``meta`` holds data spec, split, command and load failures."""

    runs: list[RunEval]
    fields: list[str]
    comparisons: list[dict] = field(default_factory=list)
    galleries: dict[str, list[GalleryItem]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def run_key(run: RunEval) -> str:
    return f"{run.model} [{run.ocr}]"


def headline(run: RunEval) -> dict[str, float | None]:
    """The numbers of the headline table for one run."""
    m = run.metrics
    t99 = m["savings"]["overall"]["targets"].get("0.99", {})
    return {
        "strict F1": m["strict"]["overall"]["f1"],
        "lenient F1": m["lenient"]["overall"]["f1"],
        "precision": m["strict"]["overall"]["precision"],
        "recall": m["strict"]["overall"]["recall"],
        "all fields correct": m["strict"]["doc_accuracy"],
        "ANLS": m["edit_similarity"]["overall"]["anls"],
        "BIO F1": m["bio"]["overall"]["f1"] if m.get("bio") and m["bio"].get("docs") else None,
        "recall@5": m["oracle_recall"]["overall"].get("@5"),
        "ECE": m["calibration"]["overall"]["ece"],
        "auto-accept cov @99% prec": t99.get("coverage"),
        **straight_through_headline(m.get("straight_through")),
    }


def straight_through_headline(st: dict | None) -> dict[str, float | None]:
    """Certified coverage, its realised precision and minutes saved (``None`` without a
    straight-through section)."""
    cert = st["overall"]["certified"] if st else {}
    return {"certified auto-accept": cert.get("coverage"),
            "its precision": cert.get("precision"),
            "min saved /100 docs": st.get("minutes_per_100") if st else None}


def straight_through_table(run: RunEval, fields: Sequence[str]) -> str:
    """Per field: oracle coverage of P(correct) at 95/99/99.5% on these documents, the
    certified threshold, its coverage here and the precision it realised."""
    st = run.metrics.get("straight_through")
    if not st:
        return ""
    rows = []
    for f in ["overall", *fields]:
        m = st["overall"] if f == "overall" else st["fields"][f]
        cert = m["certified"]
        rows.append([f"<b>{html.escape(f)}</b>",
                     *[_fmt(m["targets"][k]["coverage"], 3) for k in m["targets"]],
                     _fmt(cert.get("threshold"), 4), _fmt(cert["coverage"], 3),
                     _fmt(cert["precision"], 4)])
    targets = list(st["overall"]["targets"])
    return html_table(["field", *[f"oracle cov @{float(t):.1%}" for t in targets],
                       "certified threshold", "certified coverage", "realised precision"],
                      rows, "detail")


LOWER_IS_BETTER = {"ECE"}


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    """A ``<table>`` of ``header`` and ``rows`` (cells are HTML: escape text before)."""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def headline_table(runs: Sequence[RunEval]) -> str:
    """Runs as rows; the best value of each column in bold."""
    heads = [headline(r) for r in runs]
    cols = list(heads[0]) if heads else []
    best: dict[str, float] = {}
    for c in cols:
        vals = [v for h in heads if (v := h[c]) is not None]
        if vals and len(runs) > 1:
            best[c] = min(vals) if c in LOWER_IS_BETTER else max(vals)
    rows = []
    for r, h in zip(runs, heads):
        cells = [f"<b>{html.escape(r.model)}</b>", html.escape(r.ocr), str(r.metrics["n_docs"])]
        for c in cols:
            s = _fmt(h[c])
            cells.append(f"<b>{s}</b>" if c in best and h[c] == best[c] else s)
        rows.append(cells)
    return html_table(["model", "OCR", "docs", *cols], rows, "headline")


def takeaways(inp: ReportInput) -> list[str]:
    """Two or three sentences a reader deciding on a model needs first."""
    if not inp.runs:
        return []
    many = len({r.ocr for r in inp.runs}) > 1
    name = (lambda r: run_key(r)) if many else (lambda r: r.model)
    best = max(inp.runs, key=lambda r: r.metrics["strict"]["overall"]["f1"])
    s = best.metrics["strict"]
    out = [(f"Best strict F1: {name(best)} with {s['overall']['f1']:.3f} "
            f"({s['doc_accuracy']:.1%} of documents have every field right).")]
    t99 = best.metrics["savings"]["overall"]["targets"].get("0.99", {})
    if t99.get("threshold") is not None:
        out.append(f"Auto-accepting its answers with confidence ≥ {t99['threshold']:.3f} "
                   f"skips review of {t99['coverage']:.1%} of fields at "
                   f"{t99['precision']:.1%} precision.")
    else:
        out.append("No confidence threshold reaches 99% precision: every field needs review.")
    for c in inp.comparisons:
        ci = c["metrics"]["strict_f1"]
        verdict = "a real difference" if ci["significant"] else "not distinguishable"
        out.append(f"{c['b']} − {c['a']} ({_ocr_pair(c)} OCR): strict F1 {ci['diff']:+.3f}, "
                   f"95% CI [{ci['low']:+.3f}, {ci['high']:+.3f}], {verdict}.")
    return out


def html_figure(uri: str, caption: str, cls: str = "") -> str:
    """A ``<figure>`` of the image at ``uri`` (a data URI) with its caption."""
    return (f'<figure class="{cls}"><img src="{uri}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def field_table(run: RunEval, fields: Sequence[str]) -> str:
    m = run.metrics
    rows = []
    for f in ["overall", *fields]:
        def pick(section: str, key: str, f: str = f) -> Any:
            s = m[section]
            return (s["overall"] if f == "overall" else s["fields"].get(f, {})).get(key)
        sv = m["savings"]["overall"] if f == "overall" else m["savings"]["fields"][f]
        tg = [sv["targets"].get(k, {}) for k in PCT_KEYS]
        cfg = sv.get("configured")
        bio = m.get("bio") or {}
        bio_f = (bio.get("overall") if f == "overall"
                 else bio.get("fields", {}).get(f.upper(), {})) or {}
        rows.append([
            f"<b>{html.escape(f)}</b>",
            _fmt(pick("strict", "precision")), _fmt(pick("strict", "recall")),
            _fmt(pick("strict", "f1")), _fmt(pick("lenient", "f1")),
            _fmt(pick("edit_similarity", "nes")), _fmt(pick("edit_similarity", "anls")),
            _fmt(bio_f.get("f1")),
            " ".join(_fmt(pick("oracle_recall", f"@{k}"), 2) for k in range(1, 6)),
            _fmt(pick("calibration", "ece")),
            *[f"{_fmt(t.get('threshold'), 3)} → {_fmt(t.get('coverage'), 2)}" for t in tg],
            (("none accepted" if not cfg["accepted"] else
              f"{cfg['coverage']:.2f} @ {cfg['precision']:.3f}") + f" (≥ {cfg['threshold']:.2f})"
             if cfg else "–"),
        ])
    return html_table(["field", "P", "R", "F1", "lenient F1", "NES", "ANLS", "BIO F1",
                   "recall@1..5", "ECE", "thr→cov @99%", "thr→cov @99.5%",
                   "schema threshold: cov @ prec"], rows, "detail")


def _ocr_pair(c: dict) -> str:
    """``provided`` for two models on one OCR pass, ``images − provided`` across passes."""
    return c["ocr_a"] if c["ocr_a"] == c["ocr_b"] else f"{c['ocr_b']} − {c['ocr_a']}"


STRAIGHT_THROUGH_NOTE = (
    '<p class="prov">Answers ranked by the correctness model\'s P(correct) (features beyond '
    "the confidence: margin, OCR agreement, type checks, position). Oracle coverage: the "
    "largest share of answers whose precision on these documents reaches the target (chosen "
    "with the gold, an upper bound). Certified: the thresholds of the model card, certified on "
    "held-out data for the card's target precision (Clopper-Pearson bound, fixed-sequence "
    "testing), applied here; realised precision is what they got on these documents. Minutes "
    "saved per 100 documents: kvloop compare's effort model (verify + accept per field, the "
    "page when every field is accepted).</p>")

FIELD_TABLE_NOTE = (
    '<p class="prov">P/R/F1: SROIE task 3, strict key (whitespace collapsed); lenient F1: all '
    "whitespace removed, case folded. NES: mean normalised edit similarity; ANLS: the same with "
    "similarities below 0.5 set to 0. BIO F1: seqeval entity F1 over word tags. recall@k: gold "
    "among the top k candidates. ECE: expected calibration error of field confidence (10 bins). "
    "thr→cov: lowest confidence threshold whose accepted answers reach the precision, and the "
    "share of answers it auto-accepts. Schema threshold: the field's configured auto_accept "
    "(coverage @ precision).</p>")


def comparison_table(comparisons: Sequence[dict]) -> str:
    rows = []
    for c in comparisons:
        for name, ci in c["metrics"].items():
            sig = '<span class="sig">yes</span>' if ci["significant"] else "no"
            rows.append([f"{html.escape(c['b'])} − {html.escape(c['a'])}",
                         html.escape(_ocr_pair(c)), html.escape(name), f"{ci['diff']:+.3f}",
                         f"[{ci['low']:+.3f}, {ci['high']:+.3f}]", sig, str(c["n_docs"])])
    return html_table(["B − A", "OCR", "metric", "difference", "95% CI (paired bootstrap)",
                   "CI excludes 0", "docs"], rows, "detail")


def ocr_effect_table(runs: Sequence[RunEval]) -> str:
    """Same model under each OCR pass side by side, so OCR and model errors are told apart."""
    by_model: dict[str, list[RunEval]] = {}
    for r in runs:
        by_model.setdefault(r.model, []).append(r)
    rows = []
    for model, rs in by_model.items():
        if len(rs) < 2:
            continue
        for r in rs:
            h = headline(r)
            rows.append([html.escape(model), html.escape(r.ocr),
                         *[_fmt(h[k]) for k in ("strict F1", "lenient F1", "all fields correct",
                                                 "ANLS", "recall@5")]])
    if not rows:
        return ""
    return html_table(["model", "OCR", "strict F1", "lenient F1", "all fields correct", "ANLS",
                   "recall@5"], rows, "detail")


def _value(v: str | None) -> str:
    return "<i>none (judged absent)</i>" if v is None else html.escape(repr(v))


def gallery_html(items: Sequence[GalleryItem]) -> str:
    if not items:
        return "<p>No wrong answers.</p>"
    cards = []
    for it in items:
        img = (f'<img src="{it.image}" alt="crop of {html.escape(it.doc_id)}">' if it.image
               else '<div class="noimg">no crop</div>')
        cands = "".join(f"<li>{html.escape(c)}</li>" for c in it.candidates) or "<li>–</li>"
        note = f'<div class="note">{html.escape(it.note)}</div>' if it.note else ""
        cards.append(
            f'<div class="card">{img}<div class="meta"><b>{html.escape(it.doc_id)}</b> · '
            f"{html.escape(it.field)} · conf {it.confidence:.2f}<br>"
            f'<span class="pred">pred: {_value(it.pred)}</span><br>'
            f'<span class="gold">gold: {_value(it.gold)}</span>'
            f"<ol>{cands}</ol>{note}</div></div>")
    return f'<div class="gallery">{"".join(cards)}</div>'


CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:18px 24px;
color:#222;max-width:1400px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:22px 0 6px;border-bottom:1px solid
#ddd;padding-bottom:3px} h3{font-size:14px;margin:14px 0 4px}
.prov{color:#555;font-size:12px;margin-bottom:10px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f3f5f8} td:first-child,th:first-child{text-align:left}
table.headline{font-size:15px} table.headline td{padding:5px 10px}
table.headline th{white-space:normal;max-width:110px;vertical-align:bottom}
.plots{display:flex;flex-wrap:wrap;gap:10px} figure{margin:0;border:1px solid #eee;padding:4px}
figure img{max-width:100%;height:auto;display:block} figcaption{font-size:11px;color:#555;
max-width:560px}
.plots.top{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));max-width:1400px}
.top figure img{width:100%}
.plots:not(.top) figure img{width:430px} .plots figure.wide img{width:860px}
.gallery{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #ddd;width:470px;
padding:5px;font-size:12px}.card img{max-width:460px;display:block}
.pred{color:#c62828}.gold{color:#2e7d32}.note{color:#777;font-style:italic}
.card ol{margin:3px 0 0 18px;padding:0}.noimg{color:#999;padding:20px}
.problems{font-size:12px;color:#7a4b00}
.sig{color:#1b5e20;font-weight:600}
.takeaways{margin:4px 0 10px;padding-left:20px;font-size:14px}
"""


def render_html(inp: ReportInput) -> str:
    """The whole report page."""
    runs, fields, meta = inp.runs, inp.fields, inp.meta
    prov = plots.provenance(runs)
    top_figs = [
        html_figure(plots.to_data_uri(plots.field_f1(runs, fields)),
                f"Task-3 F1 per field. {prov}"),
        html_figure(plots.to_data_uri(plots.coverage_precision(runs)),
                f"Coverage vs precision of auto-accepting answers above a confidence "
                f"threshold; dots mark the 99% operating point. {prov}"),
        html_figure(plots.to_data_uri(plots.reliability(runs)),
                f"Reliability diagram of field confidence. {prov}"),
    ]
    parts = [
        f"<h1>{html.escape(meta.get('title', 'kvloop evaluation'))}</h1>",
        (f'<div class="prov">{html.escape(prov)} · split {html.escape(str(meta.get("split")))}'
         f' · {html.escape(str(meta.get("created", "")))}<br>'
         f'command: <code>{html.escape(str(meta.get("command", "")))}</code></div>'),
        headline_table(runs),
        '<ul class="takeaways">' + "".join(f"<li>{html.escape(t)}</li>"
                                           for t in takeaways(inp)) + "</ul>",
        '<div class="plots top">' + "".join(top_figs) + "</div>",
    ]
    if inp.comparisons:
        parts += ["<h2>Differences between runs (95% paired bootstrap CI over documents)</h2>",
                  comparison_table(inp.comparisons)]
    ocr = ocr_effect_table(runs)
    if ocr:
        parts += ["<h2>OCR effect: provided OCR vs page images read by the OCR engines</h2>",
                  ocr]
    parts += ["<h2>Per field</h2>", FIELD_TABLE_NOTE]
    for r in runs:
        parts += [f"<h3>{html.escape(run_key(r))}</h3>", field_table(r, fields)]
    more = [html_figure(plots.to_data_uri(plots.recall_at_k(runs)),
                    f"Oracle recall@k of the candidate lists. {prov}")]
    more.append(html_figure(plots.to_data_uri(plots.coverage_precision_fields(runs, fields)),
                        f"Auto-accept curves per field (coverage vs precision of accepted "
                        f"answers). {prov}", "wide"))
    if any(r.metrics.get("straight_through") for r in runs):
        more.append(html_figure(plots.to_data_uri(plots.coverage_precision_fields(
            runs, fields, section="straight_through")),
            f"Straight-through: coverage vs precision per field, answers ranked by the "
            f"correctness model's P(correct). {prov}", "wide"))
        parts += ["<h2>Straight-through processing (certified auto-accept)</h2>",
                  STRAIGHT_THROUGH_NOTE]
        for r in runs:
            parts += [f"<h3>{html.escape(run_key(r))}</h3>", straight_through_table(r, fields)]
    parts += ["<h2>Candidates and auto-accept per field</h2>",
              '<div class="plots">' + "".join(more) + "</div>"]
    for r in runs:
        items = inp.galleries.get(run_key(r), [])
        n_wrong = sum(not o.strict_ok for o in r.outcomes)
        parts += [f"<h2>Error gallery: {html.escape(run_key(r))}</h2>",
                  (f'<p class="prov">{len(items)} of {n_wrong} wrong answers, most confident '
                   "first (fields in turn). Red boxes: predicted words; green: gold words. "
                   "List: top candidates.</p>"),
                  gallery_html(items) if items or not n_wrong else ""]
    problems = list(meta.get("load_failures", [])) + [p for r in runs for p in r.problems]
    if problems:
        shown = "".join(f"<li>{html.escape(p)}</li>" for p in problems[:200])
        parts += [f"<h2>Problems ({len(problems)})</h2><ul class='problems'>{shown}</ul>"]
    body = "\n".join(parts)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(meta.get('title', 'kvloop evaluation'))}</title>"
            f"<style>{CSS}</style></head><body>{body}</body></html>")


def report_json(inp: ReportInput) -> dict:
    """Every number in the report (curves and bins included), JSON-ready."""
    return {
        "meta": inp.meta,
        "fields": inp.fields,
        "runs": [{"model": r.model, "ocr": r.ocr, "data": r.data, "headline": headline(r),
                  "metrics": r.metrics, "problems": r.problems} for r in inp.runs],
        "comparisons": inp.comparisons,
        "gallery": {k: [{**asdict(g), "image": None} for g in v]
                    for k, v in inp.galleries.items()},
    }


def render_markdown(inp: ReportInput) -> str:
    """A short summary: headline table, significant differences, where the full report is."""
    heads = [headline(r) for r in inp.runs]
    cols = list(heads[0]) if heads else []
    lines = [f"# {inp.meta.get('title', 'kvloop evaluation')}", "",
             plots.provenance(inp.runs), "", *[f"- {t}" for t in takeaways(inp)], "",
             "| model | OCR | docs | " + " | ".join(cols) + " |",
             "|---|---|---:|" + "---:|" * len(cols)]
    for r, h in zip(inp.runs, heads):
        vals = " | ".join("–" if h[c] is None else f"{h[c]:.3f}" for c in cols)
        lines.append(f"| {r.model} | {r.ocr} | {r.metrics['n_docs']} | {vals} |")
    for c in inp.comparisons:
        lines += ["", (f"**{c['b']} − {c['a']}** ({_ocr_pair(c)} OCR, {c['n_docs']} docs, "
                       "95% paired bootstrap CI):")]
        for name in ("strict_f1", "lenient_f1", "doc_accuracy", "anls"):
            ci = c["metrics"][name]
            lines.append(f"- {name}: {ci['diff']:+.3f} [{ci['low']:+.3f}, {ci['high']:+.3f}]"
                         + (" (CI excludes 0)" if ci["significant"] else ""))
    lines += ["", "Full report: report.html (every number: report.json)."]
    return "\n".join(lines) + "\n"


def write_report(inp: ReportInput, out_dir: str) -> dict[str, str]:
    """Write report.html, report.json and summary.md into ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, n) for k, n in
             (("html", "report.html"), ("json", "report.json"), ("md", "summary.md"))}
    with open(paths["html"], "w", encoding="utf-8") as fh:
        fh.write(render_html(inp))
    with open(paths["json"], "w", encoding="utf-8") as fh:
        json.dump(report_json(inp), fh, indent=1, default=_jsonable)
    with open(paths["md"], "w", encoding="utf-8") as fh:
        fh.write(render_markdown(inp))
    return paths


def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
