"""Errors of the outbox."""

from __future__ import annotations

__all__ = ["OutboxError"]

from pipeline.errors import EdgeloopError


class OutboxError(EdgeloopError):
    """The outbox file cannot be opened or used, or a message cannot be stored."""
