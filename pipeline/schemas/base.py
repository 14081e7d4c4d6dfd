"""Building blocks shared by every message: the envelope, field types, model identity."""

from __future__ import annotations

__all__ = [
    "MAX_INT64",
    "Envelope",
    "Label",
    "MessageId",
    "ModelRef",
    "Probability",
    "SafeId",
    "Seq",
    "Sha256",
    "StrictModel",
    "TimestampNs",
    "new_id",
    "now_ns",
]

import time
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from pipeline.topics import ID_PATTERN

MAX_INT64 = 2**63 - 1

SafeId = Annotated[
    str,
    Field(
        pattern=ID_PATTERN,
        description="1-64 letters, digits, '_', '.', '-'; safe in topics, keys and tags",
        examples=["plant-a", "cam-01"],
    ),
]
MessageId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_-]{8,64}$",
        description="Unique message id; consumers deduplicate on it",
        examples=["5f0c6a3e9b2d4c18a7e1f3b2c4d5e6f7"],
    ),
]
Seq = Annotated[
    int,
    Field(ge=0, le=MAX_INT64, description="Per-device sequence number, strictly increasing"),
]
TimestampNs = Annotated[
    int,
    Field(ge=0, le=MAX_INT64, description="Capture time, UTC, nanoseconds since the epoch"),
]
Sha256 = Annotated[
    str, Field(pattern=r"^[0-9a-f]{64}$", description="Lower-case hex SHA-256 digest")
]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Label = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Class label; bounded set per model, used as a tag",
    ),
]


def new_id() -> str:
    """A new unique message id (UUID4, 32 hex digits)."""
    return uuid.uuid4().hex


def now_ns() -> int:
    """Current UTC time in nanoseconds."""
    return time.time_ns()


class StrictModel(BaseModel):
    """Base of every schema: frozen, no unknown fields, no NaN or infinity, strict types."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        str_max_length=4096,
        validate_default=True,
    )


class ModelRef(StrictModel):
    """Identity of the model that made a decision."""

    name: SafeId = Field(description="Model name from its manifest")
    version: str = Field(
        pattern=r"^\d+\.\d+\.\d+([+-][A-Za-z0-9.]{1,32})?$",
        description="Semantic version of the model package",
        examples=["1.0.0"],
    )
    sha256: Sha256 = Field(description="SHA-256 of the ONNX file that ran")


class Envelope(StrictModel):
    """Fields every message carries (the ``type`` and ``v`` live on each subclass)."""

    id: MessageId = Field(description="Unique id; consumers deduplicate on it")
    site: SafeId = Field(description="Plant or site id")
    device: SafeId = Field(description="Device id; the Kafka key")
    seq: Seq
    ts: TimestampNs
