"""``result``: the structured outcome of one edge inference."""

from __future__ import annotations

__all__ = ["AnomalySummary", "ResultV1", "Route", "Task"]

from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipeline.schemas.base import (
    Envelope,
    Label,
    MessageId,
    ModelRef,
    Probability,
    SafeId,
    StrictModel,
)

Route = Literal["confident", "uncertain", "anomalous", "audit", "normal"]
Task = Literal["classify", "anomaly"]

_Score = Annotated[float, Field(ge=0.0, le=1e12)]


class AnomalySummary(StrictModel):
    """Summary of the sensor window an anomaly score was computed on."""

    window_s: float = Field(gt=0, le=86_400, description="Length of the window, seconds")
    threshold: _Score = Field(description="Score above which the window is anomalous")
    features: dict[SafeId, float] = Field(
        default_factory=dict,
        max_length=64,
        description="Named window statistics, e.g. vibration_rms, temperature_c, current_a",
    )


class ResultV1(Envelope):
    """One decision of an edge model, confident or not.

    For ``classify`` the ``score`` is the top-1 probability; for ``anomaly`` it is
    the anomaly score and ``anomaly`` holds the window summary.
    """

    type: Literal["result"] = "result"
    v: Literal[1] = 1
    model: ModelRef
    task: Task
    source: SafeId = Field(description="Camera or sensor name in the edge config")
    line: SafeId | None = Field(default=None, description="Production line, for line KPIs")
    label: Label = Field(description="Top-1 class, or 'normal'/'anomaly'")
    score: _Score = Field(description="Top-1 probability (classify) or anomaly score")
    margin: Probability | None = Field(default=None, description="Top-1 minus top-2 probability")
    entropy: float | None = Field(default=None, ge=0, le=64, description="Entropy in nats")
    probs: dict[Label, Probability] | None = Field(default=None, max_length=256)
    route: Route = Field(description="Where the router sent this decision")
    frame_id: MessageId | None = Field(
        default=None, description="Id of the uploaded frame message, if any"
    )
    action: SafeId | None = Field(default=None, description="Local action it triggered, if any")
    latency_ms: float = Field(ge=0, le=3_600_000, description="Frame in hand to decision")
    anomaly: AnomalySummary | None = None

    @model_validator(mode="after")
    def _anomaly_has_summary(self) -> ResultV1:
        if self.task == "anomaly" and self.anomaly is None:
            raise ValueError("an anomaly result needs the 'anomaly' window summary")
        return self
