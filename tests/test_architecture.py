"""The package boundaries of DESIGN.md §3, checked on the source."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = {
    "cv2",
    "onnxruntime",
    "faust",
    "torch",
    "kafka",
    "aiokafka",
    "paho",
    "influxdb_client",
    "numpy",
    "mode",
}


def _imports(package: str) -> dict[Path, set[str]]:
    out = {}
    for path in (REPO / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        out[path] = names
    return out


def test_pipeline_stays_light():
    bad = {
        str(p.relative_to(REPO)): sorted(n & HEAVY)
        for p, n in _imports("pipeline").items()
        if n & HEAVY
    }
    assert not bad, f"pipeline/ must not import heavy libraries: {bad}"


def test_pipeline_imports_neither_side():
    bad = {
        str(p.relative_to(REPO))
        for p, n in _imports("pipeline").items()
        if n & {"edge_node", "cloud_stream"}
    }
    assert not bad


@pytest.mark.parametrize(
    ("side", "other"), [("edge_node", "cloud_stream"), ("cloud_stream", "edge_node")]
)
def test_edge_and_cloud_never_import_each_other(side, other):
    bad = {str(p.relative_to(REPO)) for p, n in _imports(side).items() if other in n}
    assert not bad, f"{side} imports {other}: {bad}"


def test_cli_help_imports_nothing_heavy():
    code = (
        "import sys, json, contextlib, io\n"
        "from pipeline.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['schemas', 'check', '--dir', 'docs/schemas'])\n"
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not loaded & HEAVY, loaded & HEAVY
