"""The benchmark baseline loop."""

from __future__ import annotations

import math

from cloud_stream.slowpath import raw_teacher_frames_per_s
from pipeline.modelpkg import builtin_package


def test_raw_loop_measures_a_rate(shots):
    rate = raw_teacher_frames_per_s(
        builtin_package("conveyor-teacher"), [s.jpeg for s in shots[:6]], 4, threads=1
    )
    assert math.isfinite(rate)
    assert rate > 0
