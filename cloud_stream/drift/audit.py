"""Drift state of one device and edge model version, kept in plain JSON.

* :class:`AgreementAudit`: how often the teacher agreed with the edge, per edge
  class, over a hopping window of verdicts.
* :class:`ScoreShift`: the edge's top-1 score distribution over a hopping window,
  compared with the model manifest's :class:`~pipeline.modelpkg.ScoreReference` by PSI.

Both produce :class:`DriftFigure` rows (the ``drift`` measurement of
docs/influxdb.md). Time is the messages' event time.
"""

from __future__ import annotations

__all__ = ["ALL", "AgreementAudit", "DriftFigure", "ScoreShift"]

from dataclasses import dataclass
from typing import Any

from cloud_stream.alerts.windows import HoppingCounts, SeqDedup
from cloud_stream.drift.psi import bin_index, psi
from pipeline.modelpkg import ScoreReference
from pipeline.schemas import ResultV1, VerdictV1

ALL = "_all"
_AGREE = "a/"
_DISAGREE = "d/"


@dataclass(frozen=True)
class DriftFigure:
    """One ``drift`` row: a class (or ``_all``) of one device and model version.

    Attributes:
        label: The edge class, or ``_all`` for every class together.
        ts_ns: End of the window evaluated (the ``now_ns`` asked for).
        agreement: Share of verdicts where the teacher agreed; None without verdicts.
        verdicts: Verdicts in the window.
        psi: Population stability index of the scores; None without results.
        results: Results in the window.
    """

    site: str
    device: str
    model: str
    model_version: str
    label: str
    ts_ns: int
    agreement: float | None = None
    verdicts: int | None = None
    psi: float | None = None
    results: int | None = None


class _Identity:
    """Site, device and model the state belongs to, taken from the messages."""

    site: str | None = None
    device: str | None = None
    model: str | None = None
    model_version: str | None = None

    def _identify(self, site: str, device: str, model: str, version: str) -> None:
        self.site, self.device, self.model, self.model_version = site, device, model, version

    def _identity_state(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "device": self.device,
            "model": self.model,
            "model_version": self.model_version,
        }

    def _load_identity(self, state: dict[str, Any]) -> None:
        self.site = state["site"]
        self.device = state["device"]
        self.model = state["model"]
        self.model_version = state["model_version"]

    def _figure(self, label: str, ts_ns: int, **fields: Any) -> DriftFigure:
        return DriftFigure(
            site=self.site or "",
            device=self.device or "",
            model=self.model or "",
            model_version=self.model_version or "",
            label=label,
            ts_ns=ts_ns,
            **fields,
        )


class AgreementAudit(_Identity):
    """Edge/teacher agreement per edge class over a hopping window of verdicts.

    Meant to be kept per (device, edge model version); the identity is taken from
    the verdicts observed.

    Args:
        window_s: Window length, seconds (a multiple of ``step_s``).
        step_s: Hop, seconds.
    """

    def __init__(self, window_s: int, step_s: int) -> None:
        self.counts = HoppingCounts(window_s, step_s)
        self.dedup = SeqDedup()

    def observe(self, verdict: VerdictV1) -> bool:
        """Count one verdict at its ``ts``; False when it was late or seen before.

        A verdict carries its frame's ``seq`` (unique per device), so a verdict
        redelivered after a crash is not counted twice.
        """
        model = verdict.edge_model
        self._identify(verdict.site, verdict.device, model.name, model.version)
        if not self.dedup.accept(verdict.device, verdict.seq):
            return False
        prefix = _AGREE if verdict.agree else _DISAGREE
        return self.counts.add(verdict.ts, prefix + verdict.edge_label)

    def per_class(self, now_ns: int) -> dict[str, tuple[int, int]]:
        """(agreed, verdicts) per edge class in the window at ``now_ns``."""
        out: dict[str, tuple[int, int]] = {}
        for key, count in self.counts.totals(now_ns).items():
            label = key[2:]
            agreed, total = out.get(label, (0, 0))
            out[label] = (agreed + (count if key.startswith(_AGREE) else 0), total + count)
        return dict(sorted(out.items()))

    def figures(self, now_ns: int) -> list[DriftFigure]:
        """``_all`` first, then one figure per class seen in the window; empty without verdicts."""
        classes = self.per_class(now_ns)
        agreed = sum(a for a, _ in classes.values())
        total = sum(t for _, t in classes.values())
        if not total:
            return []
        out = [self._figure(ALL, now_ns, agreement=agreed / total, verdicts=total)]
        for label, (a, t) in classes.items():
            out.append(self._figure(label, now_ns, agreement=a / t, verdicts=t))
        return out

    def to_state(self) -> dict[str, Any]:
        """Plain JSON state."""
        return {
            **self._identity_state(),
            "counts": self.counts.to_state(),
            "dedup": self.dedup.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AgreementAudit:
        """Rebuild from :meth:`to_state` output."""
        counts = HoppingCounts.from_state(state["counts"])
        out = cls(counts.size_s, counts.step_s)
        out.counts = counts
        if "dedup" in state:  # states written before verdicts were deduplicated have none
            out.dedup = SeqDedup.from_state(state["dedup"])
        out._load_identity(state)
        return out


class ScoreShift(_Identity):
    """Hopping histogram of the edge's top-1 score against a reference, as PSI.

    Meant to be kept per (device, model version). Results seen before (same device
    and seq, a redelivery) are not counted twice.

    Args:
        reference: The model manifest's score reference (bin edges and shares).
        window_s: Window length, seconds (a multiple of ``step_s``).
        step_s: Hop, seconds.
    """

    def __init__(self, reference: ScoreReference, window_s: int, step_s: int) -> None:
        self.reference = reference
        self.counts = HoppingCounts(window_s, step_s)
        self.dedup = SeqDedup()

    def observe(self, result: ResultV1) -> bool:
        """Count the result's score; False when it was a duplicate or late."""
        self._identify(result.site, result.device, result.model.name, result.model.version)
        if not self.dedup.accept(result.device, result.seq):
            return False
        return self.counts.add(result.ts, str(bin_index(result.score, self.reference.edges)))

    def observed(self, now_ns: int) -> list[int]:
        """Counts per reference bin in the window at ``now_ns``."""
        hist = [0] * len(self.reference.fractions)
        for key, count in self.counts.totals(now_ns).items():
            hist[int(key)] += count
        return hist

    def psi(self, now_ns: int) -> tuple[float | None, int]:
        """(PSI, results) in the window at ``now_ns``; PSI is None without results."""
        hist = self.observed(now_ns)
        n = sum(hist)
        return (psi(self.reference.fractions, hist) if n else None), n

    def figure(self, now_ns: int) -> DriftFigure | None:
        """The ``_all`` figure with ``psi`` and ``results``; None without results."""
        value, n = self.psi(now_ns)
        return None if value is None else self._figure(ALL, now_ns, psi=value, results=n)

    def to_state(self) -> dict[str, Any]:
        """Plain JSON state, reference included (it is at most ~200 numbers)."""
        return {
            **self._identity_state(),
            "reference": self.reference.model_dump(mode="json"),
            "counts": self.counts.to_state(),
            "dedup": self.dedup.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ScoreShift:
        """Rebuild from :meth:`to_state` output."""
        reference = ScoreReference.model_validate(state["reference"], strict=False)
        counts = HoppingCounts.from_state(state["counts"])
        out = cls(reference, counts.size_s, counts.step_s)
        out.counts = counts
        out.dedup = SeqDedup.from_state(state["dedup"])
        out._load_identity(state)
        return out
