"""Fixtures for outbox tests: a fresh outbox file per test, closed afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_node.outbox import Outbox


@pytest.fixture
def outbox_factory(tmp_path: Path) -> Iterator[Callable[..., Outbox]]:
    made: list[Outbox] = []

    def make(max_bytes: int = 1_000_000, device: str = "cam-01", name: str = "o.db") -> Outbox:
        box = Outbox(tmp_path / name, max_bytes=max_bytes, device=device)
        made.append(box)
        return box

    yield make
    for box in made:
        box.close()
