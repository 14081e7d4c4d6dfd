"""Settings of the edge router: upload budget, near-duplicate suppression, audit, overrides."""

from __future__ import annotations

__all__ = ["RouterConfig", "UploadCrop"]

from pydantic import Field, model_validator

from pipeline.config.base import Section


class UploadCrop(Section):
    """Region of the frame to upload, as fractions of its width and height."""

    x: float = Field(default=0.0, ge=0, lt=1, description="Left edge, fraction of the width")
    y: float = Field(default=0.0, ge=0, lt=1, description="Top edge, fraction of the height")
    width: float = Field(default=1.0, gt=0, le=1, description="Width, fraction of the width")
    height: float = Field(default=1.0, gt=0, le=1, description="Height, fraction of the height")

    @model_validator(mode="after")
    def _inside(self) -> UploadCrop:
        if self.x + self.width > 1.0 + 1e-9 or self.y + self.height > 1.0 + 1e-9:
            raise ValueError("the crop must lie inside the frame (x + width <= 1, y + height <= 1)")
        return self


class RouterConfig(Section):
    """How the edge decides which frames go to the cloud.

    Uncertain frames are uploaded while the per-source budget has tokens and the
    frame is not a near-duplicate of a recent upload; a random ``audit_rate`` share
    of confident frames is uploaded too, from a smaller budget of its own.
    """

    frames_per_min: float = Field(
        default=90.0,
        ge=0,
        le=60_000,
        description="Uncertain frames uploaded per minute, per source. The default covers "
        "the usual ~10% escalation of a 10 fps camera, so the cloud re-checks them all, and "
        "caps a drift burst (every frame uncertain) at 15%",
    )
    burst: int = Field(
        default=10, ge=0, le=10_000, description="Uncertain uploads allowed at once (bucket size)"
    )
    dedup_hamming: int = Field(
        default=6,
        ge=-1,
        le=64,
        description="A frame within this perceptual-hash distance of a recent upload is a "
        "near-duplicate and is not uploaded; -1 turns suppression off",
    )
    dedup_window: int = Field(
        default=32, ge=1, le=4096, description="Recent uploads per source compared for duplicates"
    )
    dedup_ttl_s: float = Field(
        default=600.0, gt=0, description="An upload older than this no longer suppresses others"
    )
    audit_rate: float = Field(
        default=0.01, ge=0, le=1, description="Share of confident frames uploaded for drift audit"
    )
    audit_frames_per_min: float = Field(
        default=6.0, ge=0, le=60_000, description="Audit uploads per minute, per source"
    )
    audit_burst: int = Field(default=2, ge=0, le=10_000, description="Audit uploads at once")
    seed: int | None = Field(
        default=None, description="Seed of the audit sampler; set it for reproducible runs"
    )
    jpeg_quality: int = Field(default=85, ge=10, le=100, description="JPEG quality of uploads")
    upload_max_side: int = Field(
        default=320,
        ge=16,
        le=8192,
        description="Uploads are downscaled to this longest side (cloud models take 96-160 px)",
    )
    upload_crop: UploadCrop | None = Field(
        default=None, description="Upload only this region of the frame (before downscaling)"
    )
    min_confidence: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Overrides the manifest's top-1 threshold for every class (per-class "
        "thresholds of the manifest are then ignored)",
    )
    min_margin: float | None = Field(
        default=None, ge=0, le=1, description="Overrides the manifest's top-1 minus top-2 margin"
    )
    max_entropy: float | None = Field(
        default=None, ge=0, description="Overrides the manifest's entropy cap, nats"
    )
