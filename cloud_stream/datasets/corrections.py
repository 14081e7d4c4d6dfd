"""Human corrections: frame id -> label, overriding the teacher in later snapshots.

Input files are CSV (a header with ``id`` and ``label`` columns; other columns are
ignored) or JSON (an object ``{"<id>": "<label>"}`` or a list of ``{"id", "label"}``).
A file is checked as a whole and stored only when every row is good, as one new,
never rewritten file ``corrections/<UTC time>-<random>.jsonl``: the corrections log
is append-only (object stores cannot append to a file, so each import is a file).
When several imports name the same frame, the latest wins.
"""

from __future__ import annotations

__all__ = [
    "CorrectionsError",
    "CorrectionsReport",
    "import_corrections",
    "load_corrections",
    "parse_corrections",
]

import csv
import io
import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from cloud_stream.datasets.config import DatasetConfig
from cloud_stream.datasets.pool import pool_ids
from cloud_stream.datasets.store import DatasetError, Store, open_store
from pipeline.schemas.base import Label, MessageId

logger = logging.getLogger(__name__)

CORRECTIONS = "corrections"
_ID = TypeAdapter(MessageId)
_LABEL = TypeAdapter(Label)


class CorrectionsError(DatasetError):
    """A corrections file has bad rows or unknown ids; nothing of it was stored.

    Attributes:
        problems: One ``file:line: what`` line per problem.
    """

    def __init__(self, file: str, problems: list[str], *, hint: str | None = None):
        self.problems = problems
        shown = problems[:50] + (
            [f"... and {len(problems) - 50} more"] if len(problems) > 50 else []
        )
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(
            f"corrections not imported ({count}):\n  " + "\n  ".join(shown),
            where=file,
            hint=hint or "fix the rows above and import the file again",
        )


@dataclass(frozen=True)
class CorrectionsReport:
    """Outcome of one import.

    Attributes:
        file: The file read.
        stored: Corrections written to the dataset.
        key: Key of the stored corrections file (None when nothing was stored).
        unknown: ``file:line: id`` of ids not in the pool, skipped (``skip_unknown``).
    """

    file: str
    stored: int
    key: str | None
    unknown: list[str] = field(default_factory=list)


def _first_error(adapter: TypeAdapter[str], value: Any) -> str | None:
    try:
        adapter.validate_python(value, strict=True)
    except ValidationError as exc:
        return str(exc.errors(include_url=False)[0]["msg"])
    return None


def _line_of(text: str, value: str) -> int | None:
    """Line of the first JSON string literal ``value`` in ``text`` (JSON has no positions)."""
    at = text.find(json.dumps(value))
    return text.count("\n", 0, at) + 1 if at >= 0 else None


def _line_key(problem: str, name: str) -> int:
    """Line number of a ``file:line: ...`` problem, for sorting (0 without one)."""
    head = problem[len(name) + 1 :].split(":", 1)[0]
    return int(head) if head.isdigit() else 0


def _csv_rows(text: str, name: str, problems: list[str]) -> list[tuple[int | None, Any, Any]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        problems.append(f"{name}:1: empty file; expected a header line 'id,label'")
        return []
    columns = [h.strip().lower() for h in header]
    if "id" not in columns or "label" not in columns:
        problems.append(
            f"{name}:1: header {header!r} needs the columns 'id' and 'label' "
            "(the first line names the columns)"
        )
        return []
    i_id, i_label = columns.index("id"), columns.index("label")
    rows: list[tuple[int | None, Any, Any]] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(
                f"{name}:{reader.line_num}: {len(row)} columns, the header has {len(header)}"
            )
            continue
        rows.append((reader.line_num, row[i_id].strip(), row[i_label].strip()))
    return rows


def _json_rows(text: str, name: str, problems: list[str]) -> list[tuple[int | None, Any, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(f"{name}:{exc.lineno}: not valid JSON: {exc.msg}")
        return []
    if isinstance(data, dict):
        return [(_line_of(text, str(k)), k, v) for k, v in data.items()]
    if not isinstance(data, list):
        problems.append(f"{name}: expected an object id -> label or a list of {{id, label}}")
        return []
    rows: list[tuple[int | None, Any, Any]] = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "id" not in item or "label" not in item:
            problems.append(f"{name}: item [{i}]: expected an object with 'id' and 'label'")
            continue
        ident = item["id"]
        rows.append(
            (_line_of(text, ident) if isinstance(ident, str) else None, ident, item["label"])
        )
    return rows


def parse_corrections(
    path: str | os.PathLike[str], *, labels: list[str] | None = None
) -> list[tuple[int | None, str, str]]:
    """Read and check a corrections file: ``(line, frame id, label)`` per row.

    Args:
        path: A ``.csv`` or ``.json`` file (other names: sniffed from the content).
        labels: The allowed labels, when the dataset declares them.

    Raises:
        CorrectionsError: listing every bad row with ``file:line``.
    """
    p = Path(path)
    name = str(p)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise CorrectionsError(name, [f"{name}: file not found"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CorrectionsError(name, [f"{name}: cannot read: {exc}"]) from exc
    problems: list[str] = []
    is_json = p.suffix.lower() == ".json" or (
        p.suffix.lower() != ".csv" and text.lstrip()[:1] in ("{", "[")
    )
    raw = _json_rows(text, name, problems) if is_json else _csv_rows(text, name, problems)
    out: list[tuple[int | None, str, str]] = []
    seen: dict[str, tuple[str, int | None]] = {}
    for line, ident, label in raw:
        at = f"{name}:{line}" if line is not None else name
        bad_id = _first_error(_ID, ident)
        if bad_id is not None:
            problems.append(f"{at}: id {ident!r}: {bad_id}")
            continue
        bad_label = _first_error(_LABEL, label)
        if bad_label is not None:
            problems.append(f"{at}: label {label!r} of {ident}: {bad_label}")
            continue
        if labels is not None and label not in labels:
            problems.append(f"{at}: label {label!r} of {ident} is not one of {labels}")
            continue
        if ident in seen and seen[ident][0] != label:
            problems.append(
                f"{at}: {ident} is labelled {label!r} here and {seen[ident][0]!r} "
                f"on line {seen[ident][1]}"
            )
            continue
        if ident not in seen:
            seen[ident] = (label, line)
            out.append((line, ident, label))
    if problems:
        raise CorrectionsError(name, sorted(problems, key=lambda t: _line_key(t, name)))
    if not out:
        raise CorrectionsError(name, [f"{name}: no corrections in the file"])
    return out


def import_corrections(
    config: DatasetConfig,
    path: str | os.PathLike[str],
    *,
    skip_unknown: bool = False,
    store: Store | None = None,
) -> CorrectionsReport:
    """Check a corrections file against the pool and store it in the dataset.

    Args:
        config: The dataset.
        path: CSV or JSON file of frame id -> label.
        skip_unknown: Store the known ids and report ids not in the pool, instead of
            refusing the whole file.
        store: Storage to use instead of the one ``config`` names (tests).

    Raises:
        CorrectionsError: bad rows, or (without ``skip_unknown``) ids not in the pool.
    """
    store = store if store is not None else open_store(config)
    rows = parse_corrections(path, labels=config.labels)
    name = str(path)
    known = pool_ids(store)
    unknown = [
        f"{name}:{line}: {ident}" if line is not None else f"{name}: {ident}"
        for line, ident, _ in rows
        if ident not in known
    ]
    if unknown and not skip_unknown:
        raise CorrectionsError(
            name,
            [f"{u} is not in the pool" for u in unknown],
            hint="check the ids (frame ids, as in 'edgeloop datasets show'), or pass "
            "--skip-unknown to import the others",
        )
    good = [(line, ident, label) for line, ident, label in rows if ident in known]
    if not good:
        return CorrectionsReport(file=name, stored=0, key=None, unknown=unknown)
    now = datetime.now(UTC)
    imported = now.isoformat(timespec="seconds")
    body = "".join(
        json.dumps(
            {
                "id": ident,
                "label": label,
                "file": Path(name).name,
                "line": line,
                "imported": imported,
            }
        )
        + "\n"
        for line, ident, label in good
    )
    key = f"{CORRECTIONS}/{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}.jsonl"
    store.put(key, body.encode(), exclusive=True)
    logger.info("stored %d corrections from %s in %s", len(good), name, store.where(key))
    return CorrectionsReport(file=name, stored=len(good), key=key, unknown=unknown)


def load_corrections(store: Store) -> dict[str, str]:
    """Frame id -> corrected label, over every import (the latest import wins).

    Raises:
        DatasetError: a stored corrections file is damaged.
    """
    out: dict[str, str] = {}
    for key in store.walk(CORRECTIONS):
        if not key.endswith(".jsonl"):
            continue
        for n, line in enumerate(store.get(key).decode().splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                out[str(item["id"])] = str(item["label"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DatasetError(
                    f"damaged corrections file: {exc}",
                    where=f"{store.where(key)}:{n}",
                    hint="restore it from a backup or delete the line",
                ) from exc
    return out
