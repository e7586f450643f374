"""The answer across conditions: one table from several `kvloop compare` output folders.

    python scripts/compare_grid.py "CORD, weak start=runs/compare-cord-quick-3s" \
        "CORD, deployed start=runs/compare-cord-deployed-quick" \
        "SROIE, deployed start=runs/compare-deployment" [--json grid.json] [--plot grid.png]

Each LABEL=FOLDER contributes one row per feedback regime and evaluation set, at its last
round (kvloop.compare.grid: every arm's pooled F1, the winner and its paired margin over the
runner-up, what the RL stage adds over SFT trained as long (or over the tuned SFT in a
comparison whose arms were tuned alike), training core-minutes per arm).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kvloop.compare.grid import GridSource, grid_cells, grid_figure, grid_markdown


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="+", metavar="LABEL=FOLDER")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--every-round", action="store_true",
                    help="a row per round with reviews (the answer per budget), not only the "
                         "last")
    ap.add_argument("--unfinished", action="store_true",
                    help="also show cells of a comparison still running (marked)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write every number here")
    ap.add_argument("--plot", type=Path, default=None,
                    help="also draw each cell's F1 per arm into this PNG")
    args = ap.parse_args()
    try:
        sources = [GridSource.parse(s) for s in args.sources]
    except ValueError as e:
        print(f"compare_grid: {e}", file=sys.stderr)
        return 2
    cells = grid_cells(sources, n_boot=args.n_boot, seed=args.seed,
                       every_round=args.every_round)
    for c in cells:
        if not c["complete"]:
            print(f"compare_grid: {c['label']}, {c['regime']}, {c['eval_set']}, round "
                  f"{c['round']}: unfinished (seeds missing: {c['missing_seeds'] or 'none'}; "
                  f"{'shown' if args.unfinished else 'left out'})", file=sys.stderr)
    if not args.unfinished:
        cells = [c for c in cells if c["complete"]]
    print(grid_markdown(cells))
    if args.json:
        args.json.write_text(json.dumps(cells, indent=1), encoding="utf-8")
    if args.plot:
        grid_figure(cells).savefig(args.plot, dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
