"""Born-digital PDFs made from SROIE receipts: does reading a PDF's text layer lose anything?

    python scripts/bench_pdf_text.py --model /work/runs/base-sroie            # 100 dev receipts
    python scripts/bench_pdf_text.py --model MODEL --n 10 --n-boot 200       # a quick check
    python scripts/bench_pdf_text.py --rule 20        # the figures behind the text-layer rule

Each receipt's provided words are drawn into a one-page PDF with a text layer, each word at
its box (Helvetica, its glyph box the word's box: sized to its height, stretched to its width), on a page whose
size in points renders at ``--dpi`` to the scan's pixel size. The PDFs are then read as a user
reads them (``kvloop extract`` on a folder: ``extractor.loaders.images.load_image_folder``,
which takes each page's text layer and runs no OCR) and the model extracts from them. The
same model extracts from the same receipts' provided words; the script prints both lenient
and strict F1, their paired bootstrap difference (text layer minus provided, 95% CI), the
words each path holds, and pages per second of reading the PDFs and of reading + extracting.

``--rule N`` measures instead what ``extractor.ocr.textlayer``'s rule rests on: the share of
readable words (dictionary words or numbers) per page in the provided words of the whole
split (exact text, as a born-digital page holds), in tesseract's reading of N scans (a good
OCR layer), of the same scans reduced 4x and blurred (a poor one), and in random marks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import string
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eval.bootstrap import bootstrap_ci, f1_of_counts
from eval.compare import compare_pair
from eval.evaluate import RunEval, evaluate_results
from extractor.document import TEXT_LAYER_OCR, Document
from extractor.loaders import load_documents
from extractor.loaders.images import load_image_folder
from extractor.ocr import import_pymupdf

SROIE = Path(os.environ.get("KVLOOP_SROIE", REPO.parent / "shared" / "data" / "sroie"))
FONT = "helv"


def write_pdf(doc: Document, path: Path, dpi: int) -> None:
    """``doc``'s words drawn at their boxes on a page of the scan's size at ``dpi``."""
    pymupdf = import_pymupdf()
    font = pymupdf.Font(FONT)
    em = font.ascender - font.descender  # a word's box is this many font sizes high
    pt = 72.0 / dpi  # points per pixel
    pdf = pymupdf.open()
    page = pdf.new_page(width=doc.width * pt, height=doc.height * pt)
    for w in doc.words:
        x0, y0, x1, y1 = (v * pt for v in w.box)
        size = max(0.5, (y1 - y0) / em)
        natural = pymupdf.get_text_length(w.text, fontname=FONT, fontsize=size)
        stretch = (x1 - x0) / natural if natural > 0 else 1.0
        base = pymupdf.Point(x0, y1 + font.descender * size)
        page.insert_text(base, w.text, fontname=FONT, fontsize=size,
                         morph=(base, pymupdf.Matrix(stretch, 1)))
    pdf.save(path)
    pdf.close()


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children (the OCR pool's workers): far less
    sensitive than wall time to other jobs on the machine."""
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                 resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def micro_f1(run: RunEval, key: int, n_boot: int, seed: int) -> tuple[float, float, float]:
    """F1 over all (receipt, field) pairs, key 0 strict / 1 lenient, and its 95% CI."""
    ci = bootstrap_ci(run.doc_stats["fields"][:, key].sum(1), f1_of_counts, n_boot, seed)
    return 100 * ci.value, 100 * ci.low, 100 * ci.high


def rule_figures(data: str, split: str, n: int) -> None:
    """Readable-word shares per page (min, quartiles, max) of the kinds of text layer."""
    import numpy as np
    from PIL import ImageFilter

    from extractor.ocr import OcrConfig, ocr_image, open_image, readable_share

    docs = load_documents(data, split=split, progress=False).documents
    psm6 = OcrConfig("psm6", psm=6)
    shares: dict[str, list[float]] = {
        f"provided words ({len(docs)} receipts)": [readable_share([w.text for w in d.words])
                                                   for d in docs],
        f"tesseract psm6 on the scan ({n})": [], f"... reduced 4x and blurred ({n})": []}
    good, poor = list(shares)[1:]
    for d in docs[:n]:
        img = open_image(str(d.source)).convert("L")
        shares[good].append(readable_share([w.text for w in ocr_image(img, psm6)]))
        worse = img.reduce(4).filter(ImageFilter.GaussianBlur(1.2))
        shares[poor].append(readable_share([w.text for w in ocr_image(worse, psm6)]))
    rng = random.Random(0)
    marks = string.ascii_letters + string.digits + "|;:~^'`,.-_"
    shares["random marks (20 pages of 100)"] = [
        readable_share(["".join(rng.choice(marks) for _ in range(rng.randint(2, 7)))
                        for _ in range(100)]) for _ in range(20)]
    print(f"{'readable share per page':40} {'min':>5} {'25%':>5} {'50%':>5} {'75%':>5} {'max':>5}")
    for name, v in shares.items():
        q = np.percentile(v, [0, 25, 50, 75, 100])
        print(f"{name:40} " + " ".join(f"{x:5.2f}" for x in q))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a kvloop model folder")
    p.add_argument("--data", default=str(SROIE))
    p.add_argument("--split", default="dev")
    p.add_argument("--n", type=int, default=None, help="first N receipts of the split")
    p.add_argument("--dpi", type=int, default=200, help="the dpi kvloop renders PDFs at")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pdf-dir", default=None, help="keep the PDFs here (default: a temp dir)")
    p.add_argument("--json", default=None, help="write the figures here too")
    p.add_argument("--rule", type=int, metavar="N", default=None,
                   help="print the figures behind the text-layer rule (N scans OCR'd), only")
    args = p.parse_args(argv)
    if args.rule is not None:
        rule_figures(args.data, args.split, args.rule)
        return 0
    if not args.model:
        p.error("--model is needed (or --rule N)")

    from extractor.model.predictor import load_predictor

    provided = [d for d in load_documents(args.data, split=args.split, progress=False).documents
                if d.gold is not None][:args.n]
    predictor = load_predictor(args.model, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.pdf_dir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for d in provided:
            write_pdf(d, folder / f"{d.id}.pdf", args.dpi)
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        report = load_image_folder(folder, workers=args.workers, cache_dir=None,
                                   dpi=args.dpi, progress=False)
        read_s, read_cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    gold = {d.id: d.gold for d in provided}
    pages = []
    for d in report.documents:
        d.gold = gold[d.id.removesuffix("-p1")]
        d.id = d.id.removesuffix("-p1")
        pages.append(d)
    kinds = sorted({d.ocr for d in pages})
    t0 = time.perf_counter()
    text_results = predictor.predict(pages)
    text_s = time.perf_counter() - t0
    provided_results = predictor.predict(provided)
    schema = predictor.schema
    runs = {
        "provided": evaluate_results(provided, provided_results, schema, model="m",
                                     data=args.split, ocr="provided"),
        "text layer": evaluate_results(pages, text_results, schema, model="m",
                                       data=args.split, ocr=TEXT_LAYER_OCR),
    }
    diff = compare_pair(runs["provided"], runs["text layer"], schema.field_names,
                        args.n_boot, args.seed)["metrics"]
    n_words = {"provided": sum(len(d.words) for d in provided),
               "text layer": sum(len(d.words) for d in pages)}
    out = {
        "model": args.model, "version": predictor.version, "receipts": len(provided),
        "pdf_pages_read": len(pages), "failures": [f"{f.path}: {f.reason}"
                                                   for f in report.failures],
        "page_kinds": kinds, "words": n_words,
        "f1": {name: {"strict": micro_f1(r, 0, args.n_boot, args.seed),
                      "lenient": micro_f1(r, 1, args.n_boot, args.seed)}
               for name, r in runs.items()},
        "diff_text_minus_provided": {k: diff[k] for k in ("strict_f1", "lenient_f1")},
        "pages_per_s_read": len(pages) / read_s if read_s else None,
        "cpu_s_read": read_cpu,
        "pages_per_s_read_and_extract": len(pages) / (read_s + text_s),
        "workers": args.workers, "cpus": os.cpu_count(),
    }
    print(f"model {predictor.version}, {len(provided)} {args.split} receipts, "
          f"{len(pages)} PDF pages read ({', '.join(kinds)}), {len(report.failures)} failed")
    print(f"words: provided {n_words['provided']}, text layer {n_words['text layer']}")
    print(f"{'':12} {'strict F1 [95% CI]':>24} {'lenient F1 [95% CI]':>24}")
    for name, f in out["f1"].items():
        s, le = f["strict"], f["lenient"]
        print(f"{name:12} {s[0]:6.1f} [{s[1]:5.1f}, {s[2]:5.1f}]    "
              f"{le[0]:6.1f} [{le[1]:5.1f}, {le[2]:5.1f}]")
    for k in ("strict_f1", "lenient_f1"):
        d = diff[k]
        print(f"text layer - provided, {k}: {100 * d['diff']:+.2f} "
              f"[{100 * d['low']:+.2f}, {100 * d['high']:+.2f}] (paired bootstrap, "
              f"{args.n_boot} draws)")
    print(f"reading the PDFs: {read_cpu:.1f} CPU s in all, pool start-up included "
          f"({len(pages) / read_cpu:.0f} pages per CPU second)")
    print(f"pages/s: reading the PDFs {out['pages_per_s_read']:.1f} ({args.workers} workers), "
          f"reading + extracting {out['pages_per_s_read_and_extract']:.2f} "
          f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
    for f in out["failures"]:
        print("  FAILED", f)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0 if pages else 1


if __name__ == "__main__":
    raise SystemExit(main())
