"""``edgeloop bench edge``: INT8 vs FP32, decision latency, routing and upstream bytes.

Everything is measured in one run on simulator data with fixed seeds that the
models never trained on; inference runs on one thread.
"""

from edge_node.bench.run import run

__all__ = ["run"]
