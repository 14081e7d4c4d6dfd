"""``edgeloop schemas export|check``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.schemas.jsonschema import check_schemas, write_schemas

DEFAULT_DIR = Path("docs/schemas")


def register(parser: argparse.ArgumentParser) -> None:
    """Add the subcommands."""
    sub = parser.add_subparsers(dest="action", required=True)
    exp = sub.add_parser("export", help="write the JSON Schema files")
    exp.add_argument("--out", type=Path, default=DEFAULT_DIR, help="directory (docs/schemas)")
    exp.set_defaults(func=_export)
    chk = sub.add_parser("check", help="fail if the committed files are stale")
    chk.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="directory (docs/schemas)")
    chk.set_defaults(func=_check)


def _export(args: argparse.Namespace) -> int:
    for path in write_schemas(args.out):
        print(path)
    return 0


def _check(args: argparse.Namespace) -> int:
    problems = check_schemas(args.dir)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print("run `edgeloop schemas export` and commit the result", file=sys.stderr)
        return 1
    print(f"{args.dir}: up to date")
    return 0
