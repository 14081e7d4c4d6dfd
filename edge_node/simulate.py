"""``edgeloop edge simulate conveyor|machine``: write simulator data as a training dataset.

The conveyor simulator writes an image-folder dataset (``split/label/*.png``), the
machine simulator a CSV file; both are the same formats a user brings their own
data in, so ``edgeloop models train`` never needs to know where data came from.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """Add ``simulate`` and its two targets."""
    sim = sub.add_parser("simulate", help="export simulator data as a dataset")
    targets = sim.add_subparsers(dest="target", required=True)

    conv = targets.add_parser("conveyor", help="conveyor-belt images, one folder per class")
    conv.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    conv.add_argument("--count", type=int, default=6000, help="images in all splits together")
    conv.add_argument("--seed", type=int, default=0, help="random seed (same seed, same data)")
    conv.add_argument("--condition", default=None, help="drift condition to render (default: none)")
    conv.add_argument("--size", type=int, default=None, help="frame width (height = 3/4)")
    conv.set_defaults(func=_conveyor)

    mach = targets.add_parser("machine", help="rotating-machine sensor data as CSV")
    mach.add_argument("--out", type=Path, required=True, help="folder to write CSV files to")
    mach.add_argument("--seconds", type=float, default=600.0, help="seconds of data per split")
    mach.add_argument("--seed", type=int, default=0, help="random seed")
    mach.set_defaults(func=_machine)


def _conveyor(args: argparse.Namespace) -> int:
    from edge_node.sources.conveyor import export_dataset

    summary = export_dataset(
        args.out, count=args.count, seed=args.seed, condition=args.condition, width=args.size
    )
    print(summary)
    return 0


def _machine(args: argparse.Namespace) -> int:
    from edge_node.sources.machine import export_csv

    summary = export_csv(args.out, seconds=args.seconds, seed=args.seed)
    print(summary)
    return 0
