"""``edgeloop bridge run --config FILE [--validate-config]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cloud_stream.bridge.config import BridgeConfig
from pipeline.config.loader import load_config
from pipeline.errors import ConfigError
from pipeline.logs import configure_logging

ENV_PREFIX = "EDGELOOP_BRIDGE__"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the subcommands."""
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser(
        "run", help="run one bridge instance (workers: N processes) until SIGTERM/SIGINT"
    )
    run.add_argument("--config", type=Path, required=True, help="bridge YAML")
    run.add_argument(
        "--validate-config",
        action="store_true",
        help="check the config, print every problem, and exit",
    )
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, BridgeConfig, env_prefix=ENV_PREFIX)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.validate_config:
        print(f"{args.config}: valid")
        return 0
    configure_logging(config.logging)
    if config.workers > 1:
        from cloud_stream.bridge.workers import WorkerPool

        return WorkerPool(config).run()
    from cloud_stream.bridge.service import Bridge

    return Bridge(config).run()
