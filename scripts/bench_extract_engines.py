"""Time `kvloop extract` with the local engine against `--engine ray` on the same images.

    python scripts/bench_extract_engines.py MODEL_DIR --limit 40          # SROIE img/, 2 CPUs
    python scripts/bench_extract_engines.py MODEL_DIR --images scans/ --ray-cpus 4 --ray-actors 2
    python scripts/bench_extract_engines.py MODEL_DIR --ray-address auto  # a running cluster

The first ``--limit`` images of ``--images`` (sorted; default the SROIE sample's ``img/``) are
linked into a scratch folder, and each engine extracts them with the same model, in its own
``kvloop extract`` process and with its own empty OCR cache, so each reads every page itself.
Prints wall seconds and pages/s per engine (whole command: imports, Ray's start-up and the
model load included, so small ``--limit`` favours the local engine) and whether the two
outputs are equal, document for document (every field of every line but ``created_at``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SROIE = Path(os.environ.get("KVLOOP_SROIE", REPO.parent / "shared" / "data" / "sroie"))
SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".pdf"}


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="model directory (`kvloop train base`)")
    p.add_argument("--images", type=Path, default=SROIE / "img", help="folder of images/PDFs")
    p.add_argument("--limit", type=int, default=20, help="pages to extract (default: 20)")
    p.add_argument("--ocr", choices=("provided", "tesseract"), default="provided",
                   help="tesseract passes: one (provided), or the default variants")
    p.add_argument("--workers", type=int, default=2, help="local engine: tesseract processes")
    p.add_argument("--threads", type=int, default=2, help="local engine: torch threads")
    p.add_argument("--ray-threads", type=int, default=1, help="torch threads per model actor")
    p.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray")
    p.add_argument("--ray-actors", type=int, default=1, help="model actors")
    p.add_argument("--ray-address", default=None, help="a running Ray cluster instead")
    p.add_argument("--device", default="cpu")
    return p


def link_inputs(images: Path, limit: int, folder: Path) -> int:
    """Symlink the first ``limit`` inputs of ``images`` into ``folder``; returns how many."""
    files = sorted(f for f in images.iterdir() if f.suffix.lower() in SUFFIXES)[:limit]
    if not files:
        sys.exit(f"no images under {images} (set --images or KVLOOP_SROIE)")
    folder.mkdir(parents=True)
    for f in files:
        (folder / f.name).symlink_to(f.resolve())
    return len(files)


def engine_args(args: argparse.Namespace, engine: str) -> list[str]:
    if engine == "local":
        return ["--workers", str(args.workers), "--threads", str(args.threads)]
    out = ["--engine", "ray", "--threads", str(args.ray_threads), "--ray-cpus",
           str(args.ray_cpus), "--ray-actors", str(args.ray_actors)]
    return out + (["--ray-address", args.ray_address] if args.ray_address else [])


def run_engine(args: argparse.Namespace, engine: str, folder: Path, scratch: Path) -> float:
    """Wall seconds of one `kvloop extract` run, with an OCR cache of its own."""
    env = {**os.environ, "KVLOOP_CACHE": str(scratch / f"cache-{engine}"),
           "OMP_THREAD_LIMIT": "1"}
    cmd = [sys.executable, "-m", "kvloop.cli", "extract", args.model, str(folder), "--out",
           str(scratch / f"{engine}.jsonl"), "--ocr", args.ocr, "--device", args.device,
           "--allow-partial", *engine_args(args, engine)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{engine} engine failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall


def stable_lines(path: Path) -> dict[str, str]:
    """doc id -> its result line without the time stamp."""
    lines = [json.loads(raw) for raw in path.read_text(encoding="utf-8").splitlines() if raw]
    return {r["doc_id"]: json.dumps({k: v for k, v in r.items() if k != "created_at"},
                                    sort_keys=True) for r in lines}


def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        scratch = Path(tmp)
        n = link_inputs(args.images, args.limit, scratch / "pages")
        print(f"{n} pages from {args.images}, --ocr {args.ocr}, {os.cpu_count()} CPUs, load "
              f"average at start {os.getloadavg()[0]:.1f}")
        print(f"{'engine':>8} {'wall s':>8} {'pages/s':>8} {'results':>8}")
        outputs = {}
        for engine in ("local", "ray"):
            wall = run_engine(args, engine, scratch / "pages", scratch)
            outputs[engine] = stable_lines(scratch / f"{engine}.jsonl")
            print(f"{engine:>8} {wall:8.1f} {n / wall:8.2f} {len(outputs[engine]):>8}",
                  flush=True)
        local, ray = outputs["local"], outputs["ray"]
        differ = sorted(i for i in local.keys() | ray.keys() if local.get(i) != ray.get(i))
        print(f"outputs equal: {not differ}" + (f" ({len(differ)} documents differ: "
                                                f"{', '.join(differ[:10])})" if differ else ""))


if __name__ == "__main__":
    main(make_parser().parse_args())
