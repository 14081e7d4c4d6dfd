"""``edgeloop cloud worker|validate-config --config FILE``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cloud_stream.worker.config import CloudConfig
from pipeline.config.loader import load_config
from pipeline.errors import ConfigError, EdgeloopError
from pipeline.logs import configure_logging

ENV_PREFIX = "EDGELOOP_CLOUD__"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the subcommands."""
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser(
        "worker",
        help="run a cloud stream worker until SIGTERM/SIGINT; workers with one app_id share "
        "the partitions",
    )
    run.add_argument("--config", type=Path, required=True, help="cloud worker YAML")
    run.set_defaults(func=_run)
    check = sub.add_parser(
        "validate-config",
        help="check the config, its rules file, teachers and InfluxDB token; print every problem",
    )
    check.add_argument("--config", type=Path, required=True, help="cloud worker YAML")
    check.set_defaults(func=_check)


def _load(path: Path) -> CloudConfig | None:
    try:
        return load_config(path, CloudConfig, env_prefix=ENV_PREFIX)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    from cloud_stream.worker.service import build_components

    try:
        c = build_components(config, base=args.config.parent, partitions=1)
    except (EdgeloopError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.config}: valid ({len(c.evaluators)} rules)")
    return 0


def _run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    configure_logging(config.logging)
    from cloud_stream.worker.service import run_worker

    try:
        return run_worker(config, base=args.config.parent)
    except (EdgeloopError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
