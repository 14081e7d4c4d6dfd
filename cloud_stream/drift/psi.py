"""Histograms and the population stability index (PSI), in plain Python.

PSI compares an observed distribution with an expected one over the same bins::

    PSI = sum_i (o_i - e_i) * ln(o_i / e_i)

with ``o_i`` and ``e_i`` the shares of bin ``i``. The usual reading:

* below 0.1: stable, no meaningful shift;
* 0.1 to 0.25: moderate shift, worth watching;
* above 0.25: major shift; the model sees data unlike its reference.
"""

from __future__ import annotations

__all__ = ["bin_index", "histogram", "psi"]

import bisect
import math
from collections.abc import Iterable, Sequence


def bin_index(value: float, edges: Sequence[float]) -> int:
    """Index of the bin of ``value``: bin ``i`` is ``[edges[i], edges[i+1])``.

    The last bin includes its upper edge; values below the first edge go to the
    first bin and values above the last edge to the last bin.

    Raises:
        ValueError: ``value`` is not finite or there are fewer than two edges.
    """
    if len(edges) < 2:
        raise ValueError("need at least two bin edges")
    if not math.isfinite(value):
        raise ValueError(f"cannot bin a non-finite value {value!r}")
    return min(max(bisect.bisect_right(edges, value) - 1, 0), len(edges) - 2)


def histogram(values: Iterable[float], edges: Sequence[float]) -> list[int]:
    """Count ``values`` into the ``len(edges) - 1`` bins (see :func:`bin_index`)."""
    counts = [0] * (len(edges) - 1)
    for value in values:
        counts[bin_index(value, edges)] += 1
    return counts


def psi(
    expected_fractions: Sequence[float], observed_counts: Sequence[int], epsilon: float = 1e-4
) -> float:
    """Population stability index of ``observed_counts`` against ``expected_fractions``.

    A share below ``epsilon`` (an empty bin on either side) counts as ``epsilon``,
    so an empty bin adds a large but finite term instead of infinity.

    Raises:
        ValueError: The sequences differ in length, nothing was observed, or
            ``epsilon`` is not positive.
    """
    if len(expected_fractions) != len(observed_counts):
        raise ValueError(
            f"{len(expected_fractions)} expected bins but {len(observed_counts)} observed"
        )
    if epsilon <= 0:
        raise ValueError("epsilon must be > 0")
    total = sum(observed_counts)
    if total <= 0:
        raise ValueError("no observations: PSI is undefined")
    out = 0.0
    for expected, count in zip(expected_fractions, observed_counts, strict=True):
        e = max(expected, epsilon)
        o = max(count / total, epsilon)
        out += (o - e) * math.log(o / e)
    return out
