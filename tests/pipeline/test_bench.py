"""Benchmarks print the fields they promise (no timing asserts)."""

from __future__ import annotations

import json

from pipeline.cli.main import main


def test_codec_bench_prints_json(capsys, tmp_path):
    out = tmp_path / "codec.json"
    assert main(["bench", "codec", "--quick", "--json", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads(out.read_text())
    for key in ("decode_msgs_per_s", "baseline_json_loads_per_s", "decode_vs_json_ratio"):
        assert report[key] > 0
