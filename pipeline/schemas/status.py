"""``status``: retained online/offline state of a device (offline via last will)."""

from __future__ import annotations

__all__ = ["StatusV1"]

from typing import Literal

from pydantic import Field

from pipeline.schemas.base import Envelope, ModelRef, SafeId


class StatusV1(Envelope):
    """The device's state; published retained, and as its MQTT last will."""

    type: Literal["status"] = "status"
    v: Literal[1] = 1
    state: Literal["online", "offline", "degraded"]
    reason: str | None = Field(default=None, max_length=512)
    software: str = Field(max_length=64, description="edgeloop version on the device")
    models: list[ModelRef] = Field(default_factory=list, max_length=32)
    sources: dict[SafeId, Literal["ok", "lost", "error"]] = Field(
        default_factory=dict, max_length=256, description="State of each camera/sensor"
    )
