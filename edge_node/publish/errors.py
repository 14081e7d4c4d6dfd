"""Errors of the MQTT publisher."""

from __future__ import annotations

__all__ = ["PublishError"]

from pipeline.errors import EdgeloopError


class PublishError(EdgeloopError):
    """The publisher cannot be set up (TLS files, credentials) or used (not started)."""
