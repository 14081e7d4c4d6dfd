"""Entry point of the ``edgeloop`` command.

Subcommands live in their own modules and are imported only when chosen, so an
edge install never imports Kafka, Faust or torch, and ``edgeloop --help`` is fast.
"""

from __future__ import annotations

__all__ = ["COMMANDS", "main"]

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from pipeline import __version__
from pipeline.errors import EdgeloopError

#: name -> (module with ``register(parser)``, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "devstack": (
        "pipeline.cli.devstack",
        "start, stop and inspect the local Mosquitto, Kafka and InfluxDB",
    ),
    "schemas": ("pipeline.cli.schemas", "export or check the JSON Schema files of every message"),
    "edge": ("edge_node.cli", "run an edge node, check its config, or export simulator data"),
    "models": ("cloud_stream.training.cli", "train, export, quantize and evaluate models"),
    "bridge": ("cloud_stream.bridge.cli", "run the MQTT-to-Kafka bridge"),
    "cloud": ("cloud_stream.worker.cli", "run a cloud stream worker (Faust) or check its config"),
    "alerts": ("cloud_stream.ops.alerts_cli", "list alerts from InfluxDB"),
    "fleet": ("cloud_stream.ops.fleet_cli", "list devices: model version, status, last seen"),
    "datasets": ("cloud_stream.datasets.cli", "retraining datasets: snapshot, list, corrections"),
    "bench": ("pipeline.cli.bench", "run a benchmark; prints JSON with an in-run baseline"),
}

_INSTALL_HINTS = {
    "edge_node": "pip install 'edgeloop[edge]'",
    "cloud_stream": "pip install 'edgeloop[cloud]'",
}


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _root_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeloop",
        description="edgeloop: INT8 edge inference, MQTT to Kafka, Faust workers, InfluxDB, "
        "and a closed retraining loop.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {n:<10} {h}" for n, (_, h) in COMMANDS.items()),
    )
    parser.add_argument("--version", action="version", version=f"edgeloop {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    parser.add_argument(
        "command",
        choices=sorted(COMMANDS),
        metavar="command",
        help="one of: " + ", ".join(COMMANDS),
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    root = _root_parser()
    # Parse only up to the command name; the rest belongs to the subcommand.
    split = next((i for i, a in enumerate(args) if not a.startswith("-")), len(args))
    ns = root.parse_args(args[: split + 1])
    module_name, help_ = COMMANDS[ns.command]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        top = module_name.split(".")[0]
        hint = _INSTALL_HINTS.get(top, "reinstall edgeloop")
        print(f"edgeloop {ns.command}: missing dependency {exc.name!r}; {hint}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"edgeloop {ns.command}", description=help_)
    module.register(parser)
    sub = parser.parse_args(args[split + 1 :])
    _setup_logging(ns.verbose)
    try:
        return int(sub.func(sub) or 0)
    except EdgeloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `edgeloop alerts | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
