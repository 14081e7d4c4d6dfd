"""The model-package format shared by the edge runtime, the cloud teacher and training.

A model package is a folder holding one ONNX file and ``manifest.json``
(:class:`ModelManifest`): what the model is, how to feed it, how to read its
output, and the thresholds the edge router uses. Packages built by the project
ship in ``pipeline/modelpkg/builtin/``.
"""

from pipeline.modelpkg.manifest import (
    AnomalyThresholds,
    ClassifyThresholds,
    ImageInput,
    InputStats,
    ModelManifest,
    ScoreReference,
    SensorChannel,
    SensorInput,
)
from pipeline.modelpkg.package import (
    BUILTIN_DIR,
    ModelPackage,
    ModelPackageError,
    builtin_package,
    load_package,
    sha256_file,
    write_package,
)

__all__ = [
    "BUILTIN_DIR",
    "AnomalyThresholds",
    "ClassifyThresholds",
    "ImageInput",
    "InputStats",
    "ModelManifest",
    "ModelPackage",
    "ModelPackageError",
    "ScoreReference",
    "SensorChannel",
    "SensorInput",
    "builtin_package",
    "load_package",
    "sha256_file",
    "write_package",
]
