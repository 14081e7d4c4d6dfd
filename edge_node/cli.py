"""``edgeloop edge run|validate-config|simulate``."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    """Add the subcommands; each lives in the module that implements it."""
    from edge_node import service_cli, simulate

    sub = parser.add_subparsers(dest="action", required=True)
    service_cli.add_parsers(sub)
    simulate.add_parser(sub)
