from __future__ import annotations

import math

import pytest

from cloud_stream.drift.psi import bin_index, histogram, psi

EDGES = [0.0, 0.5, 0.8, 1.0]


def test_histogram_bins_are_half_open_and_the_last_is_closed() -> None:
    assert histogram([0.0, 0.49, 0.5, 0.79, 0.8, 0.99, 1.0], EDGES) == [2, 2, 3]


def test_values_outside_the_edges_clamp_to_the_end_bins() -> None:
    assert histogram([-5.0, 7.0, 1.0000001], EDGES) == [1, 0, 2]
    assert bin_index(-1e300, EDGES) == 0
    assert bin_index(1e300, EDGES) == 2


def test_non_finite_values_and_too_few_edges_are_errors() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        bin_index(math.nan, EDGES)
    with pytest.raises(ValueError, match="two bin edges"):
        bin_index(0.1, [0.0])


def test_psi_of_the_expected_distribution_is_zero() -> None:
    assert psi([0.2, 0.3, 0.5], [20, 30, 50]) == pytest.approx(0.0, abs=1e-12)


def test_psi_matches_the_formula() -> None:
    expected = [0.5, 0.5]
    observed = [80, 20]
    value = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert psi(expected, observed) == pytest.approx(value)
    assert value > 0.25  # a major shift by the usual reading


def test_empty_bins_use_epsilon_and_stay_finite() -> None:
    value = psi([0.5, 0.5, 0.0], [0, 10, 0], epsilon=1e-4)
    manual = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1.0 - 0.5) * math.log(1.0 / 0.5)
    assert value == pytest.approx(manual)
    assert math.isfinite(value)
    # A larger epsilon softens the empty bin.
    assert psi([0.5, 0.5, 0.0], [0, 10, 0], epsilon=1e-2) < value


def test_small_shift_reads_stable() -> None:
    assert psi([0.25, 0.25, 0.25, 0.25], [26, 24, 25, 25]) < 0.1


@pytest.mark.parametrize(
    ("expected", "observed", "match"),
    [([0.5, 0.5], [1, 2, 3], "expected bins"), ([0.5, 0.5], [0, 0], "no observations")],
)
def test_psi_errors(expected: list[float], observed: list[int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        psi(expected, observed)


def test_psi_needs_a_positive_epsilon() -> None:
    with pytest.raises(ValueError, match="epsilon"):
        psi([1.0], [1], epsilon=0)
