"""CSV sensor datasets for the anomaly model: reading splits, channel specs, windows.

A dataset is a folder with ``train.csv`` and ``val.csv`` (normal operation) and
optionally ``test.csv`` (with faults) and ``dataset.json``. Each CSV has a header
with a time column ``t_s`` (seconds), one column per channel and optionally a
``label`` column (``normal`` or a fault name). ``dataset.json`` may give
``rate_hz`` and each channel's physical ``min``/``max``/``unit``; without it the
rate comes from the time column and the range from the data, widened.
"""

from __future__ import annotations

__all__ = [
    "AnomalyDataError",
    "ChannelSpec",
    "Split",
    "channel_specs",
    "load_split",
    "windows",
]

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import EdgeloopError

logger = logging.getLogger(__name__)

TIME_COLUMN = "t_s"
LABEL_COLUMN = "label"


class AnomalyDataError(EdgeloopError):
    """A sensor dataset is missing, malformed or unusable for training."""


@dataclass(frozen=True)
class Split:
    """One CSV split in memory.

    Attributes:
        path: The CSV file.
        channels: Channel names, in column order of ``values``.
        values: float64 (samples, channels).
        labels: Per-sample label (``normal`` when the file has no label column).
        rate_hz: Sample rate.
    """

    path: Path
    channels: tuple[str, ...]
    values: np.ndarray
    labels: np.ndarray
    rate_hz: float


@dataclass(frozen=True)
class ChannelSpec:
    """A channel's normalisation (from training data) and physical range."""

    name: str
    mean: float
    std: float
    min: float
    max: float
    unit: str


def _meta(data: Path) -> dict[str, object]:
    f = data / "dataset.json"
    if not f.is_file():
        return {}
    try:
        meta = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AnomalyDataError(
            f"cannot read dataset.json: {exc}", where=str(f), hint="fix or delete the file"
        ) from exc
    return meta if isinstance(meta, dict) else {}


def load_split(data: Path, split: str, *, required: bool = True) -> Split | None:
    """Read ``data/<split>.csv``.

    Raises:
        AnomalyDataError: the file is missing (when ``required``), has no time column,
            no channel columns, or a value that is not a number.
    """
    path = data / f"{split}.csv"
    if not path.is_file():
        if not required:
            return None
        raise AnomalyDataError(
            f"no {split}.csv in the dataset",
            where=str(data),
            hint="a sensor dataset holds train.csv and val.csv (normal operation), optionally "
            "test.csv; write one with 'edgeloop edge simulate machine --out DIR'",
        )
    with path.open(newline="") as fh:
        header = [h.strip() for h in next(csv.reader(fh), [])]
    if TIME_COLUMN not in header:
        raise AnomalyDataError(
            f"no {TIME_COLUMN!r} column in the header {header}",
            where=f"{path}:1",
            hint=f"the first line names the columns: {TIME_COLUMN}, one per channel, "
            "optionally label",
        )
    chan_idx = [i for i, h in enumerate(header) if h not in (TIME_COLUMN, LABEL_COLUMN)]
    if not chan_idx:
        raise AnomalyDataError(
            "no channel columns", where=f"{path}:1", hint="add one column per sensor channel"
        )
    num_idx = [header.index(TIME_COLUMN), *chan_idx]
    try:
        num = np.loadtxt(path, delimiter=",", skiprows=1, usecols=num_idx, ndmin=2)
    except ValueError as exc:
        raise AnomalyDataError(
            f"a value is not a number: {exc}",
            where=str(path),
            hint="leave a missing sample empty as 'nan'; fix or drop malformed rows",
        ) from exc
    if LABEL_COLUMN in header:
        labels = np.loadtxt(
            path, delimiter=",", skiprows=1, usecols=header.index(LABEL_COLUMN), dtype=str, ndmin=1
        )
    else:
        labels = np.full(num.shape[0], "normal")
    meta = _meta(data)
    rate = meta.get("rate_hz")
    if not isinstance(rate, int | float):
        rate = _rate_from_times(num[:, 0])
        if rate is None:
            raise AnomalyDataError(
                f"cannot infer the sample rate from {TIME_COLUMN}",
                where=str(path),
                hint=f"{TIME_COLUMN} must increase, or give rate_hz in dataset.json",
            )
    return Split(
        path=path,
        channels=tuple(header[i] for i in chan_idx),
        values=num[:, 1:],
        labels=labels,
        rate_hz=float(rate),
    )


def _rate_from_times(t: np.ndarray) -> float | None:
    """Samples per second from a time column; snapped to a whole Hz when within 0.01 %."""
    if t.size < 2 or not np.median(np.diff(t)) > 0 or t[-1] <= t[0]:
        return None
    rate = (t.size - 1) / float(t[-1] - t[0])
    whole = round(rate)
    return float(whole) if whole and abs(rate - whole) <= 1e-4 * rate else rate


def channel_specs(data: Path, train: Split) -> tuple[ChannelSpec, ...]:
    """Normalisation from the training split; range from dataset.json, else the data widened."""
    meta = _meta(data)
    declared = {
        str(c.get("name")): c
        for c in meta.get("channels", [])  # type: ignore[attr-defined]
        if isinstance(c, dict)
    }
    specs = []
    for j, name in enumerate(train.channels):
        col = train.values[:, j]
        col = col[np.isfinite(col)]
        mean, std = float(col.mean()), float(max(col.std(), 1e-6))
        d = declared.get(name, {})
        lo, hi = float(col.min()), float(col.max())
        span = max(hi - lo, 1e-3)
        specs.append(
            ChannelSpec(
                name=name,
                mean=mean,
                std=std,
                min=float(d.get("min", lo - span)),
                max=float(d.get("max", hi + span)),
                unit=str(d.get("unit", ""))[:16],
            )
        )
    return tuple(specs)


def windows(
    split: Split, specs: tuple[ChannelSpec, ...], *, window: int, hop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised windows (n, C, window) float32, their labels and start times (s).

    A window's label is the label of all its samples, or ``mixed`` when they differ.
    """
    n = split.values.shape[0]
    if n < window:
        raise AnomalyDataError(
            f"{n} samples, fewer than one window of {window}",
            where=str(split.path),
            hint="record more data",
        )
    mean = np.array([s.mean for s in specs])
    std = np.array([s.std for s in specs])
    starts = np.arange(0, n - window + 1, hop)
    norm = ((split.values - mean) / std).astype(np.float32)
    view = np.lib.stride_tricks.sliding_window_view(norm, window, axis=0)  # (n-w+1, C, w)
    wins = np.ascontiguousarray(view[starts])
    first = split.labels[starts]
    last = split.labels[starts + window - 1]
    # Labels come in runs, so a window is pure when its ends agree and no run starts inside.
    change = np.flatnonzero(split.labels[1:] != split.labels[:-1]) + 1
    inside = np.searchsorted(change, starts, side="right") != np.searchsorted(
        change, starts + window - 1, side="right"
    )
    labels = np.where((first == last) & ~inside, first, "mixed")
    return wins, labels, starts / split.rate_hz
