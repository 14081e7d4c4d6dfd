"""Settings of the retraining dataset builder (the ``datasets:`` section of a cloud worker)."""

from __future__ import annotations

__all__ = ["CollectConfig", "DatasetConfig", "SplitConfig"]

from typing import Any

from pydantic import Field, model_validator

from pipeline.config.base import Section
from pipeline.schemas.base import Label, SafeId


class CollectConfig(Section):
    """Which frames that reached the teacher become samples."""

    uncertain: bool = Field(
        default=True,
        description="Keep frames the edge uploaded as uncertain (whatever the teacher said)",
    )
    disagreements: bool = Field(
        default=True, description="Keep audit frames where the teacher and the edge disagree"
    )
    audit_agreements: bool = Field(
        default=False,
        description="Also keep audit frames where the teacher agrees with the edge "
        "(mostly easy, confident frames: many, and little to learn from)",
    )


class SplitConfig(Section):
    """Fractions of the train/val/test split; a frame id always lands in the same split."""

    train: float = Field(default=0.8, gt=0, le=1, description="Fraction for training")
    val: float = Field(default=0.1, ge=0, le=1, description="Fraction for validation")
    test: float = Field(default=0.1, ge=0, le=1, description="Fraction for the test set")

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1, got {total:g}")
        return self


class DatasetConfig(Section):
    """Where the dataset lives and which samples it keeps.

    The dataset folder is ``{root}/{name}``: ``pool/`` (incoming samples),
    ``corrections/`` (imported human labels) and ``versions/v0001``... (snapshots).
    """

    root: str = Field(
        default="data/datasets",
        min_length=1,
        description="Folder of the datasets, or an fsspec URL (memory://x, s3://bucket/prefix)",
    )
    name: SafeId = Field(default="conveyor", description="Dataset name: a folder under root")
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options for a URL root (e.g. key, secret, "
        "client_kwargs.endpoint_url for S3-compatible storage); write secrets as ${ENV}",
    )
    collect: CollectConfig = Field(
        default_factory=CollectConfig, description="Which frames become samples"
    )
    min_teacher_score: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="Skip samples whose teacher confidence is below this: the label would be "
        "a guess",
    )
    dedup_hamming: int = Field(
        default=6,
        ge=0,
        le=32,
        description="Snapshots drop a sample whose 64-bit perceptual hash is within this many "
        "bits of an earlier sample of the same label (0: identical hashes only)",
    )
    split: SplitConfig = Field(default_factory=SplitConfig, description="Train/val/test fractions")
    labels: list[Label] | None = Field(
        default=None,
        description="Class labels in model output order, written to each version's "
        "dataset.json so training keeps that order; when set, other labels are refused",
    )

    @model_validator(mode="after")
    def _unique_labels(self) -> DatasetConfig:
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must not repeat")
        return self

    @property
    def url(self) -> str:
        """The dataset folder: ``{root}/{name}``."""
        return f"{self.root.rstrip('/')}/{self.name}"
