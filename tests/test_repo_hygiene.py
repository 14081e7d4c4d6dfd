"""Guards on what gets committed: no stray large files (a runaway editor temp file once did)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_BYTES = 2 * 1024 * 1024  # model files get their own, explicit allowance when they land


def test_no_large_tracked_files():
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    big = []
    for name in filter(None, out.decode().split("\0")):
        path = REPO / name
        if path.is_file() and path.stat().st_size > MAX_BYTES:
            big.append(f"{name}: {path.stat().st_size} bytes")
    assert not big, f"tracked files over {MAX_BYTES} bytes: {big}"
