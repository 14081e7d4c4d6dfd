"""``edgeloop bench NAME [--quick] [--json]``: benchmarks with an in-run baseline."""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any

#: name -> (module with ``run(quick: bool) -> dict``, help)
BENCHES: dict[str, tuple[str, str]] = {
    "codec": ("pipeline.bench.codec", "message validation vs bare json.loads"),
    "bridge": ("cloud_stream.bridge.bench", "MQTT->Kafka bridge vs mosquitto_sub | kcat"),
    "edge": ("edge_node.bench", "INT8 vs FP32, decision latency, routing, upstream bytes"),
    "cloud": ("cloud_stream.worker.bench", "slow path, InfluxDB sink and alert latency vs raw"),
    "outbox": ("edge_node.publish.bench", "outbox puts/acks per second; publish rate vs bare paho"),
}


def register(parser: argparse.ArgumentParser) -> None:
    """Add the arguments."""
    parser.add_argument("name", choices=sorted(BENCHES), help="which benchmark")
    parser.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    module = importlib.import_module(BENCHES[args.name][0])
    report: dict[str, Any] = module.run(quick=args.quick)
    text = json.dumps(report, indent=None if args.json else 2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(text)
    return 0
