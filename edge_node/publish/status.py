"""The device's retained ``status`` messages: online on connect, offline as last will."""

from __future__ import annotations

__all__ = ["StatusFactory", "StatusState", "basic_status"]

from collections.abc import Sequence
from typing import Literal, Protocol

from pipeline import __version__
from pipeline.schemas import ModelRef, StatusV1, new_id, now_ns

StatusState = Literal["online", "offline", "degraded"]


class StatusFactory(Protocol):
    """Builds the device's status message; the publisher encodes and sends it.

    The edge service passes its own factory to report models and sources; the
    publisher calls it with a fresh ``seq`` each time (on every connect for the
    online message and the last will, and at stop for the offline one).
    """

    def __call__(self, state: StatusState, *, seq: int, reason: str | None) -> StatusV1:
        """Return the status of the device in ``state``."""
        ...


def basic_status(
    site: str,
    device: str,
    *,
    software: str = __version__,
    models: Sequence[ModelRef] = (),
) -> StatusFactory:
    """A factory for status messages without per-source detail."""

    def make(state: StatusState, *, seq: int, reason: str | None) -> StatusV1:
        return StatusV1(
            id=new_id(),
            site=site,
            device=device,
            seq=seq,
            ts=now_ns(),
            state=state,
            reason=reason,
            software=software,
            models=list(models),
        )

    return make
