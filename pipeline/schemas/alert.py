"""``alert``: a rule fired or resolved, on the edge or in the cloud."""

from __future__ import annotations

__all__ = ["AlertV1", "Severity"]

from typing import Literal

from pydantic import Field

from pipeline.schemas.base import Envelope, SafeId

Severity = Literal["info", "warning", "critical"]


class AlertV1(Envelope):
    """One alert event. ``device`` is the subject: a device, or a line for line rules."""

    type: Literal["alert"] = "alert"
    v: Literal[1] = 1
    rule: SafeId = Field(description="Id of the rule that fired, e.g. defect_rate_high")
    severity: Severity
    state: Literal["firing", "resolved"]
    scope: Literal["device", "line", "site"] = "device"
    line: SafeId | None = None
    summary: str = Field(max_length=1024, description="One line for a person")
    value: float | None = Field(default=None, description="The measured value that fired")
    threshold: float | None = None
    labels: dict[SafeId, SafeId] = Field(
        default_factory=dict, max_length=32, description="Extra bounded context"
    )
