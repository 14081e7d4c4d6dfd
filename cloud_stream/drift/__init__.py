"""Drift audit: edge/teacher agreement and score distribution shift (PSI)."""

from cloud_stream.drift.audit import ALL, AgreementAudit, DriftFigure, ScoreShift
from cloud_stream.drift.psi import bin_index, histogram, psi

__all__ = [
    "ALL",
    "AgreementAudit",
    "DriftFigure",
    "ScoreShift",
    "bin_index",
    "histogram",
    "psi",
]
