"""``manifest.json`` of a model package: identity, input spec, labels, thresholds, metrics."""

from __future__ import annotations

__all__ = [
    "AnomalyThresholds",
    "ClassifyThresholds",
    "ImageInput",
    "InputStats",
    "ModelManifest",
    "ScoreReference",
    "SensorChannel",
    "SensorInput",
]

from typing import Annotated, Literal

from pydantic import Field, model_validator

from pipeline.schemas.base import Label, SafeId, Sha256, StrictModel

_Version = Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+([+-][A-Za-z0-9.]{1,32})?$")]


class ImageInput(StrictModel):
    """How to turn a camera frame (HxWx3 uint8, BGR as OpenCV reads it) into the model input.

    Steps, in order: optional centre crop to ``crop`` (fraction of the shorter side),
    resize to ``width`` x ``height`` (``stretch`` or ``letterbox``), colour
    conversion, scale by ``scale``, subtract ``mean`` and divide by ``std`` per
    channel, then lay out as ``nchw`` or ``nhwc`` float32 with a batch of one.
    """

    kind: Literal["image"] = "image"
    name: str = Field(default="input", min_length=1, description="ONNX input name")
    width: int = Field(ge=8, le=4096, description="Model input width, pixels")
    height: int = Field(ge=8, le=4096, description="Model input height, pixels")
    color: Literal["bgr", "rgb", "gray"] = Field(default="rgb", description="Channel order")
    layout: Literal["nchw", "nhwc"] = Field(default="nchw", description="Tensor layout")
    resize: Literal["stretch", "letterbox"] = Field(default="stretch", description="Resize mode")
    crop: float = Field(
        default=1.0, gt=0.0, le=1.0, description="Centre crop, fraction of the shorter side"
    )
    scale: float = Field(default=1.0 / 255.0, gt=0, description="Multiply pixel values by this")
    mean: tuple[float, ...] = Field(default=(0.0, 0.0, 0.0), description="Per-channel mean")
    std: tuple[float, ...] = Field(default=(1.0, 1.0, 1.0), description="Per-channel std")

    @property
    def channels(self) -> int:
        """Number of channels the model expects."""
        return 1 if self.color == "gray" else 3

    @model_validator(mode="after")
    def _per_channel(self) -> ImageInput:
        for field in ("mean", "std"):
            if len(getattr(self, field)) != self.channels:
                raise ValueError(f"{field} needs {self.channels} values for color={self.color}")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be > 0")
        return self


class InputStats(StrictModel):
    """What the training images looked like, in model-input units (after normalisation).

    Per image, the mean of each channel and the standard deviation over all
    pixels (contrast) were measured on the training split; these are their
    ranges, widened by a margin. A frame outside them (a dimmed lamp, a colour
    cast, a new surface finish) is something the model has not seen, so the
    edge treats its decision as uncertain however confident the model is.
    """

    channel_mean: tuple[tuple[float, float], ...] = Field(
        min_length=1, max_length=4, description="(low, high) of each channel's per-image mean"
    )
    contrast: tuple[float, float] = Field(description="(low, high) of per-image pixel std")
    source: str = Field(default="", max_length=256, description="How the ranges were measured")

    @model_validator(mode="after")
    def _ordered(self) -> InputStats:
        for low, high in (*self.channel_mean, self.contrast):
            if low > high:
                raise ValueError("each range must be (low, high) with low <= high")
        return self


class ScoreReference(StrictModel):
    """How the model's top-1 score was distributed on held-out data: the drift reference.

    ``edges`` are the histogram bin edges (``len(fractions) + 1``, increasing);
    ``fractions`` the share of held-out samples in each bin. The cloud compares the
    live distribution against it (population stability index) to see a shift.
    For classifiers the score is the top-1 probability; for anomaly models, the
    anomaly score.
    """

    edges: tuple[float, ...] = Field(min_length=3, max_length=101, description="Bin edges")
    fractions: tuple[float, ...] = Field(
        min_length=2, max_length=100, description="Share of samples per bin; sums to 1"
    )
    samples: int = Field(ge=1, description="How many held-out samples it was measured on")
    source: str = Field(default="", max_length=256, description="Which data, which model")

    @model_validator(mode="after")
    def _shape(self) -> ScoreReference:
        if len(self.edges) != len(self.fractions) + 1:
            raise ValueError("edges needs exactly one more value than fractions")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("edges must increase strictly")
        if any(f < 0 for f in self.fractions) or abs(sum(self.fractions) - 1.0) > 1e-3:
            raise ValueError("fractions must be >= 0 and sum to 1")
        return self


class SensorChannel(StrictModel):
    """One sensor channel of a window: its name, normalisation and physical range."""

    name: SafeId = Field(description="Channel name, e.g. vibration_g, temperature_c")
    mean: float = Field(default=0.0, description="Subtracted before the model")
    std: float = Field(default=1.0, gt=0, description="Divided by after the mean")
    min: float = Field(description="Lowest physically possible value; below is a sensor fault")
    max: float = Field(description="Highest physically possible value; above is a sensor fault")
    unit: str = Field(default="", max_length=16, description="Unit, for people")

    @model_validator(mode="after")
    def _range(self) -> SensorChannel:
        if self.min >= self.max:
            raise ValueError(f"channel {self.name}: min must be below max")
        return self


class SensorInput(StrictModel):
    """A window of ``window`` samples of every channel at ``rate_hz``, fed as (1, C, window)."""

    kind: Literal["sensor"] = "sensor"
    name: str = Field(default="input", min_length=1, description="ONNX input name")
    rate_hz: float = Field(gt=0, le=1_000_000, description="Sample rate the model was trained at")
    window: int = Field(ge=8, le=1_048_576, description="Samples per window")
    hop: int = Field(ge=1, le=1_048_576, description="Samples between window starts")
    channels: tuple[SensorChannel, ...] = Field(min_length=1, max_length=64)

    @property
    def window_s(self) -> float:
        """Window length in seconds."""
        return self.window / self.rate_hz


class ClassifyThresholds(StrictModel):
    """When a classification is confident enough to act on without the cloud.

    A decision is confident when the top-1 probability reaches the class's threshold
    (``per_class`` or ``min_confidence``), the margin to the second class reaches
    ``min_margin`` and the entropy stays at or below ``max_entropy``.
    """

    kind: Literal["classify"] = "classify"
    min_confidence: float = Field(default=0.9, ge=0, le=1, description="Default top-1 threshold")
    per_class: dict[Label, float] = Field(
        default_factory=dict, description="Top-1 threshold per class, overrides the default"
    )
    min_margin: float = Field(default=0.0, ge=0, le=1, description="Top-1 minus top-2")
    max_entropy: float | None = Field(default=None, ge=0, description="Entropy cap, nats")


class AnomalyThresholds(StrictModel):
    """Anomaly score thresholds with hysteresis: raise at ``raise_at``, clear below ``clear_at``."""

    kind: Literal["anomaly"] = "anomaly"
    raise_at: float = Field(ge=0, description="Score at or above which a window is anomalous")
    clear_at: float = Field(ge=0, description="Score below which an active anomaly clears")
    calibration: str = Field(
        default="", max_length=256, description="How raise_at was chosen, e.g. 'p99.5 of normal'"
    )

    @model_validator(mode="after")
    def _order(self) -> AnomalyThresholds:
        if self.clear_at > self.raise_at:
            raise ValueError("clear_at must not exceed raise_at")
        return self


class ModelManifest(StrictModel):
    """Everything a runtime needs to know about a model besides its weights."""

    format: Literal[1] = Field(default=1, description="Manifest format version")
    name: SafeId = Field(description="Model name; with version, its identity")
    version: _Version = Field(description="Semantic version; the edge refuses downgrades")
    task: Literal["classify", "anomaly"]
    precision: Literal["fp32", "int8"] = Field(description="Numeric precision of the weights")
    file: str = Field(
        default="model.onnx", pattern=r"^[A-Za-z0-9_.-]{1,128}\.onnx$", description="ONNX file"
    )
    sha256: Sha256 = Field(description="SHA-256 of the ONNX file")
    bytes: int = Field(ge=1, description="Size of the ONNX file")
    opset: int = Field(ge=7, le=30, description="ONNX default-domain opset the file uses")
    input: ImageInput | SensorInput = Field(discriminator="kind")
    input_stats: InputStats | None = Field(
        default=None,
        description="Ranges of the training images' statistics; frames outside are uncertain",
    )
    score_reference: ScoreReference | None = Field(
        default=None,
        description="Distribution of the top-1 score on held-out data; the cloud's drift reference",
    )
    output: str = Field(default="output", min_length=1, description="ONNX output name")
    output_kind: Literal["probs", "logits", "score"] = Field(
        description="probs/logits (classify, shape (1, classes)) or score (anomaly, shape (1,))"
    )
    labels: tuple[Label, ...] = Field(
        min_length=1, max_length=256, description="Class labels in output order"
    )
    thresholds: ClassifyThresholds | AnomalyThresholds = Field(discriminator="kind")
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Evaluation figures, e.g. accuracy, auc, latency_ms"
    )
    trained_on: str = Field(default="", max_length=256, description="Dataset id or description")
    created: str = Field(default="", max_length=64, description="ISO 8601 build time")
    description: str = Field(default="", max_length=2048)

    @model_validator(mode="after")
    def _consistent(self) -> ModelManifest:
        if self.task == "classify":
            if self.input.kind != "image" or self.thresholds.kind != "classify":
                raise ValueError("a classify model needs an image input and classify thresholds")
            if self.output_kind == "score":
                raise ValueError("a classify model outputs probs or logits")
            if len(set(self.labels)) != len(self.labels):
                raise ValueError("labels must be unique")
            assert isinstance(self.thresholds, ClassifyThresholds)
            stats = self.input_stats
            if stats is not None and len(stats.channel_mean) != self.input.channels:
                raise ValueError("input_stats.channel_mean needs one range per input channel")
            unknown = set(self.thresholds.per_class) - set(self.labels)
            if unknown:
                raise ValueError(f"thresholds.per_class names unknown labels {sorted(unknown)}")
        else:
            if self.input.kind != "sensor" or self.thresholds.kind != "anomaly":
                raise ValueError("an anomaly model needs a sensor input and anomaly thresholds")
            if self.output_kind != "score":
                raise ValueError("an anomaly model outputs a score")
            if self.input_stats is not None:
                raise ValueError("input_stats is for image models")
        return self
