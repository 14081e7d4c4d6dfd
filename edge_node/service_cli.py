"""``edgeloop edge run`` and ``edgeloop edge validate-config``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipeline.config.loader import load_config
from pipeline.errors import ConfigError, EdgeloopError
from pipeline.logs import configure_logging

ENV_PREFIX = "EDGELOOP_EDGE__"


def add_parsers(sub: Any) -> None:
    """Add ``run`` and ``validate-config``."""
    run = sub.add_parser("run", help="run the edge node until SIGTERM/SIGINT")
    run.add_argument("--config", type=Path, required=True, help="edge YAML")
    run.add_argument(
        "--validate-config", action="store_true", help="check config and models, then exit"
    )
    run.add_argument(
        "--exit-when-done",
        action="store_true",
        help="exit once finite sources end and the outbox is sent (replays, tests)",
    )
    run.add_argument(
        "--drain-timeout", type=float, default=10.0, help="seconds to send what is queued at exit"
    )
    run.set_defaults(func=_run)

    val = sub.add_parser(
        "validate-config", help="check the config, its models and sources; print every problem"
    )
    val.add_argument("--config", type=Path, required=True, help="edge YAML")
    val.set_defaults(func=_validate)


def _load(path: Path) -> Any:
    from edge_node.config import EdgeConfig

    return load_config(path, EdgeConfig, env_prefix=ENV_PREFIX)


def check(path: Path) -> list[str]:
    """Every problem with the config at ``path`` and the models it names (empty: valid)."""
    from edge_node.models import load_models
    from edge_node.runtime import AnomalyDetector, ImageClassifier
    from edge_node.sources import create_source

    try:
        config = _load(path)
    except ConfigError as exc:
        return [str(exc)]
    problems: list[str] = []
    for src in config.sources:
        try:
            create_source(src)  # builds it (checks its settings) without opening it
        except EdgeloopError as exc:
            problems.append(f"source {src.name}: {exc}")
    try:
        models = load_models(config)
    except EdgeloopError as exc:
        return [*problems, str(exc)]
    for m in models.all():
        try:
            # Build the session: catches wrong shapes, opsets and corrupt files.
            cls = ImageClassifier if m.kind == "image" else AnomalyDetector
            cls(m.package, threads=1)
        except EdgeloopError as exc:
            problems.append(f"model {m.key}: {exc}")
    return problems


def _validate(args: argparse.Namespace) -> int:
    problems = check(args.config)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if not problems:
        print(f"{args.config}: valid")
    return 2 if problems else 0


def _run(args: argparse.Namespace) -> int:
    if args.validate_config:
        return _validate(args)
    try:
        config = _load(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.logging)
    from edge_node.service import EdgeNode

    node = EdgeNode(config)
    return node.run(exit_when_done=args.exit_when_done, drain_timeout=args.drain_timeout)
