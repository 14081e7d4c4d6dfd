"""``csv``: replay recorded sensor data from a CSV file as :class:`SensorBlock` s.

The file has a header naming a time column (``t_s`` by default, seconds) and one
column per channel; ``channels`` picks which to replay (default: every column
but the time and label columns). The sample rate is given or inferred from the
time column. A bad row (a value that is not a number, too few columns) does not
stop the replay: its values become NaN, it is counted in :attr:`Source.errors`
and logged with ``file:line`` (rate-limited), and the edge's value checks see
the NaN as a sensor fault. A missing file, or a header without the needed
columns, is a :class:`SourceError` at ``open()``.
"""

from __future__ import annotations

__all__ = ["CsvReplayConfig", "CsvReplaySource"]

import csv
import itertools
import logging
import math
import statistics
import time
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edge_node.sources.base import SensorBlock, Source, SourceConfig, SourceError, register

logger = logging.getLogger(__name__)

_LOG_EVERY_S = 10.0
_RATE_PROBE_ROWS = 256


class CsvReplayConfig(SourceConfig):
    """Replay a CSV recording of sensor channels."""

    type: Literal["csv"] = Field(default="csv", description="Source plugin key")
    path: str = Field(description="CSV file with a header line")
    time_column: str = Field(default="t_s", description="Column with the sample time, seconds")
    channels: tuple[str, ...] | None = Field(
        default=None,
        min_length=1,
        description="Columns to replay, in this order; default: all but time and label",
    )
    label_column: str | None = Field(
        default="label", description="Column with a ground-truth label, used when present"
    )
    rate_hz: float | None = Field(
        default=None, gt=0, le=1_000_000, description="Sample rate; default: from the time column"
    )
    block: int = Field(default=512, ge=1, le=1_048_576, description="Samples per SensorBlock")
    realtime: bool = Field(default=True, description="Pace blocks at the sample rate")
    loop: bool = Field(default=False, description="Start again at the end of the file")


@register(CsvReplayConfig)
class CsvReplaySource(Source):
    """Reads the CSV row by row and yields blocks of ``block`` samples."""

    kind = "sensor"

    def __init__(self, config: CsvReplayConfig) -> None:
        super().__init__(config)
        self.cfg = config
        self.path = Path(config.path)
        self.rate_hz = 0.0
        self.channels: tuple[str, ...] = ()
        self._cols: list[int] = []
        self._label_col: int | None = None
        self._ncols = 0
        self._rows: _Rows | None = None
        self._index = 0
        self._samples = 0
        self._t0_ns = 0
        self._mono0 = 0
        self._done = False
        self._last_log = -math.inf
        self._suppressed = 0

    # -- opening -----------------------------------------------------------------------------

    def open(self) -> None:
        """Check the file and its header, and work out the sample rate.

        Raises:
            SourceError: the file is missing or unreadable, or the header lacks a column.
        """
        c = self.cfg
        if not self.path.is_file():
            raise SourceError(
                f"CSV file {self.path} does not exist",
                where=f"source {self.name}: path",
                hint="check the path (relative paths start at the edge node's working folder)",
            )
        try:
            with self.path.open(newline="") as fh:
                header = [h.strip() for h in next(csv.reader(fh), [])]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise SourceError(
                f"cannot read the CSV header: {exc}",
                where=f"{self.path}:1",
                hint="is it a CSV file?",
            ) from exc
        if c.time_column not in header:
            raise SourceError(
                f"header has no time column {c.time_column!r} (columns: {header})",
                where=f"{self.path}:1",
                hint="name the time column with 'time_column', or add one in seconds",
            )
        skip = {c.time_column, c.label_column}
        wanted = c.channels or tuple(h for h in header if h not in skip)
        missing = [ch for ch in wanted if ch not in header]
        if missing or not wanted:
            raise SourceError(
                f"header lacks channel columns {missing or '(none found)'} (columns: {header})",
                where=f"{self.path}:1",
                hint="list existing columns under 'channels', or fix the header line",
            )
        self.channels = tuple(wanted)
        self._cols = [header.index(h) for h in wanted]
        self._time_col = header.index(c.time_column)
        self._label_col = header.index(c.label_column) if c.label_column in header else None
        self._ncols = len(header)
        self.rate_hz = c.rate_hz or self._infer_rate()
        self.close()
        self._rows = _Rows(self.path)
        self._t0_ns = time.time_ns()
        self._mono0 = time.perf_counter_ns()
        self._index = self._samples = 0
        self._done = False
        logger.info(
            "csv source %s: %s, channels %s at %.6g Hz, %d samples/block",
            self.name,
            self.path,
            ",".join(self.channels),
            self.rate_hz,
            c.block,
        )

    def _infer_rate(self) -> float:
        times: list[float] = []
        rows = _Rows(self.path)
        try:
            for _, row in rows:
                try:
                    times.append(float(row[self._time_col]))
                except (ValueError, IndexError):
                    continue
                if len(times) >= _RATE_PROBE_ROWS:
                    break
        finally:
            rows.close()
        rate = _rate_from_times(times)
        if rate is None:
            raise SourceError(
                f"cannot infer the sample rate from column {self.cfg.time_column!r}",
                where=f"{self.path}:2",
                hint="the time column must increase; or set 'rate_hz'",
            )
        return rate

    # -- reading -----------------------------------------------------------------------------

    def _bad(self, kind: str, line: int, detail: str) -> None:
        self.count_error(kind)
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY_S:
            logger.warning(
                "%s:%d: %s; its values are NaN (%d more bad rows not logged since the last)",
                self.path,
                line,
                detail,
                self._suppressed,
            )
            self._last_log = now
            self._suppressed = 0
        else:
            self._suppressed += 1

    def _parse(self, line: int, row: list[str]) -> tuple[list[float], str | None]:
        if len(row) < self._ncols:
            self._bad("missing_column", line, f"{len(row)} columns, the header has {self._ncols}")
            return [math.nan] * len(self._cols), None
        vals: list[float] = []
        bad: list[str] = []
        for i, col in enumerate(self._cols):
            try:
                vals.append(float(row[col]))
            except ValueError:
                vals.append(math.nan)
                bad.append(f"{self.channels[i]}={row[col]!r}")
        if bad:
            self._bad("not_a_number", line, "not a number: " + ", ".join(bad))
        label = row[self._label_col].strip() if self._label_col is not None else None
        return vals, label

    def read(self, timeout: float = 1.0) -> SensorBlock | None:
        """The next block, or ``None`` (not due yet with ``realtime``, or end of file)."""
        if self._rows is None:
            self.open()
        rows = self._rows
        assert rows is not None
        c = self.cfg
        if self._done:
            return None
        if c.realtime:
            due_ns = self._mono0 + round((self._samples + c.block) / self.rate_hz * 1e9)
            wait_s = (due_ns - time.perf_counter_ns()) / 1e9
            if wait_s > timeout:
                time.sleep(max(timeout, 0.0))
                return None
            if wait_s > 0:
                time.sleep(wait_s)
        values: list[list[float]] = []
        truth: str | None = None
        first_line = 0
        while len(values) < c.block:
            item = rows.next()
            if item is None:
                if c.loop and rows.yielded:
                    rows.close()
                    rows = self._rows = _Rows(self.path)
                    continue
                break
            line, row = item
            vals, label = self._parse(line, row)
            if not values:
                truth, first_line = label, line
            values.append(vals)
        if not values:
            self._done = True
            rows.close()
            return None
        block = SensorBlock(
            source=self.name,
            index=self._index,
            ts_ns=self._t0_ns + round(self._samples / self.rate_hz * 1e9),
            mono_ns=time.perf_counter_ns(),
            rate_hz=self.rate_hz,
            channels=self.channels,
            values=np.asarray(values, dtype=np.float64).reshape(len(values), len(self.channels)),
            truth=truth,
            extra={"file": str(self.path), "line": str(first_line)},
        )
        self._index += 1
        self._samples += len(values)
        return block

    def close(self) -> None:
        """Close the file; safe to call twice."""
        if self._rows is not None:
            self._rows.close()

    @property
    def exhausted(self) -> bool:
        """True at the end of the file (never with ``loop``)."""
        return self._done


def _rate_from_times(times: list[float]) -> float | None:
    """Samples per second over the probed rows; snapped to a whole Hz when within 0.01 %.

    The span over many rows is far more precise than one step of a rounded time
    column, and the snap makes e.g. 2047.9998 Hz the 2048 Hz a model was trained at.
    """
    steps = [b - a for a, b in itertools.pairwise(times)]
    if not steps or not statistics.median(steps) > 0 or times[-1] <= times[0]:
        return None
    rate = (len(times) - 1) / (times[-1] - times[0])
    whole = round(rate)
    return float(whole) if whole and abs(rate - whole) <= 1e-4 * rate else rate


class _Rows:
    """Data rows of a CSV file with their 1-based line numbers; blank lines skipped."""

    def __init__(self, path: Path) -> None:
        self._fh = path.open(newline="")
        self._reader = csv.reader(self._fh)
        next(self._reader, None)  # header
        self.yielded = 0

    def next(self) -> tuple[int, list[str]] | None:
        """The next non-blank row, or None at the end."""
        while True:
            try:
                row = next(self._reader)
            except StopIteration:
                return None
            except csv.Error:
                row = ["<unparseable>"]  # e.g. a NUL byte: reported as a short row
            if row and any(cell.strip() for cell in row):
                self.yielded += 1
                return self._reader.line_num, row

    def __iter__(self) -> _Rows:
        return self

    def __next__(self) -> tuple[int, list[str]]:
        item = self.next()
        if item is None:
            raise StopIteration
        return item

    def close(self) -> None:
        """Close the file."""
        self._fh.close()
