"""The slow path: the FP32 teacher's second opinion on uploaded frames, as verdicts."""

from cloud_stream.slowpath.raw import raw_teacher_frames_per_s
from cloud_stream.slowpath.registry import ModelRegistry, TeacherConfigError
from cloud_stream.slowpath.teacher import CorruptFrame, Teacher, TeacherBatch, TeacherPrediction
from cloud_stream.slowpath.verdicts import build_verdict, verdict_id

__all__ = [
    "CorruptFrame",
    "ModelRegistry",
    "Teacher",
    "TeacherBatch",
    "TeacherConfigError",
    "TeacherPrediction",
    "build_verdict",
    "raw_teacher_frames_per_s",
    "verdict_id",
]
