"""Message schemas: one strict pydantic model per message type and version."""

from pipeline.schemas.alert import AlertV1, Severity
from pipeline.schemas.base import Envelope, ModelRef, StrictModel, new_id, now_ns
from pipeline.schemas.codec import MESSAGE_TYPES, Message, decode, decode_obj, encode
from pipeline.schemas.dlq import DeadLetterMetaV1, DlqReason
from pipeline.schemas.frame import FrameMetaV1
from pipeline.schemas.ota import OtaOfferV1, OtaReportV1
from pipeline.schemas.properties import from_properties, to_properties
from pipeline.schemas.result import AnomalySummary, ResultV1
from pipeline.schemas.status import StatusV1
from pipeline.schemas.telemetry import TelemetryV1
from pipeline.schemas.verdict import VerdictV1

__all__ = [
    "MESSAGE_TYPES",
    "AlertV1",
    "AnomalySummary",
    "DeadLetterMetaV1",
    "DlqReason",
    "Envelope",
    "FrameMetaV1",
    "Message",
    "ModelRef",
    "OtaOfferV1",
    "OtaReportV1",
    "ResultV1",
    "Severity",
    "StatusV1",
    "StrictModel",
    "TelemetryV1",
    "VerdictV1",
    "decode",
    "decode_obj",
    "encode",
    "from_properties",
    "new_id",
    "now_ns",
    "to_properties",
]
