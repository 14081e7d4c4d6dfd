"""``edgeloop bench codec``: cost of validating messages at the boundary.

Every message that crosses a boundary (bridge, workers) goes through
:func:`pipeline.schemas.decode`: size check, JSON parse, strict validation.
The baseline is a bare ``json.loads`` of the same bytes in the same run, so the
ratio says what validation costs on this machine, whatever else it is doing.
"""

from __future__ import annotations

__all__ = ["run"]

import json
import random
import statistics
import time
from typing import Any

from pipeline.schemas import (
    FrameMetaV1,
    ModelRef,
    ResultV1,
    decode,
    encode,
    from_properties,
    to_properties,
)


def _results(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    model = ModelRef(name="conveyor-int8", version="1.0.0", sha256="ab" * 32)
    out = []
    for i in range(n):
        p = rng.uniform(0.5, 1.0)
        out.append(
            encode(
                ResultV1(
                    id=f"{rng.getrandbits(128):032x}",
                    site="plant-a",
                    device=f"cam-{i % 50:02d}",
                    seq=i,
                    ts=1_790_000_000_000_000_000 + i,
                    model=model,
                    task="classify",
                    source="cam0",
                    line="line-1",
                    label="ok",
                    score=p,
                    margin=p - (1 - p),
                    probs={"ok": p, "scratch": 1 - p},
                    route="confident",
                    latency_ms=rng.uniform(0.5, 3),
                )
            )
        )
    return out


def _time(fn: Any, items: list[Any], repeats: int) -> float:
    """Best-of-``repeats`` items per second."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for item in items:
            fn(item)
        rates.append(len(items) / (time.perf_counter() - t0))
    return max(rates)


def run(quick: bool = False, seed: int = 7) -> dict[str, Any]:
    """Measure and return the figures."""
    n, repeats = (2_000, 3) if quick else (20_000, 5)
    payloads = _results(n, seed)
    decode_rate = _time(decode, payloads, repeats)
    json_rate = _time(json.loads, payloads, repeats)
    model = ModelRef(name="conveyor-int8", version="1.0.0", sha256="ab" * 32)
    meta = FrameMetaV1(
        id="f" * 32,
        site="plant-a",
        device="cam-01",
        seq=1,
        ts=1,
        model=model,
        source="cam0",
        result_id="r" * 32,
        reason="uncertain",
        label="scratch",
        score=0.55,
        width=640,
        height=480,
        size=30_000,
        phash="0123456789abcdef",
    )
    props = [to_properties(meta)] * (n // 4)
    props_rate = _time(from_properties, props, repeats)
    return {
        "bench": "codec",
        "messages": n,
        "mean_payload_bytes": round(statistics.fmean(len(p) for p in payloads), 1),
        "decode_msgs_per_s": round(decode_rate),
        "baseline_json_loads_per_s": round(json_rate),
        "decode_vs_json_ratio": round(decode_rate / json_rate, 3),
        "frame_properties_decode_per_s": round(props_rate),
    }
