"""``ota_offer`` (cloud to device, retained) and ``ota_report`` (device to cloud)."""

from __future__ import annotations

__all__ = ["OtaOfferV1", "OtaReportV1", "OtaState"]

from typing import Literal

from pydantic import Field

from pipeline.schemas.base import Envelope, ModelRef, SafeId

OtaState = Literal["received", "verified", "rejected", "canary", "active", "rolled_back", "failed"]


class OtaOfferV1(Envelope):
    """A model package offered to one device as part of a staged rollout."""

    type: Literal["ota_offer"] = "ota_offer"
    v: Literal[1] = 1
    rollout: SafeId = Field(description="Rollout id")
    stage: SafeId = Field(description="Rollout stage, e.g. canary, wave-1, all")
    model: ModelRef
    url: str = Field(max_length=2048, description="Where to fetch the package (file:// or http)")
    manifest_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    signature: str = Field(
        pattern=r"^[A-Za-z0-9+/]{86}==$", description="Ed25519 signature, base64"
    )
    canary_s: float = Field(default=300, ge=0, le=7 * 86_400, description="Canary duration")


class OtaReportV1(Envelope):
    """What the device did with an offer."""

    type: Literal["ota_report"] = "ota_report"
    v: Literal[1] = 1
    rollout: SafeId
    model: ModelRef
    previous: ModelRef | None = None
    state: OtaState
    reason: str | None = Field(default=None, max_length=1024)
    metrics: dict[SafeId, float] = Field(default_factory=dict, max_length=64)
