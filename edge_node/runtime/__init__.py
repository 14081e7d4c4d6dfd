"""The edge model runtime: onnxruntime sessions, preprocessing, classifiers, anomaly scoring."""

from edge_node.runtime.anomaly import AnomalyDetector
from edge_node.runtime.classifier import ImageClassifier, softmax
from edge_node.runtime.errors import FrameError, InferenceError, ModelLoadError, SensorInputError
from edge_node.runtime.preprocess import Preprocessor, check_frame
from edge_node.runtime.results import AnomalyWindow, Classification, SensorFault
from edge_node.runtime.session import ModelSession, session_options

__all__ = [
    "AnomalyDetector",
    "AnomalyWindow",
    "Classification",
    "FrameError",
    "ImageClassifier",
    "InferenceError",
    "ModelLoadError",
    "ModelSession",
    "Preprocessor",
    "SensorFault",
    "SensorInputError",
    "check_frame",
    "session_options",
    "softmax",
]
