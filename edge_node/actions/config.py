"""Settings of local actions: when an action fires and what it does.

Payloads and argv items are ``string.Template`` strings: ``$label``, ``$score``,
``$source``, ``$route``, ``$ts_ns``, ``$action`` (``$$`` for a dollar sign); JSON
braces need no escaping. They are checked when the config is loaded.
"""

from __future__ import annotations

__all__ = ["FIELDS", "ActionConfig", "ActionWhen", "CommandDo", "MqttDo"]

import string
from typing import Annotated, Literal

from pydantic import Field, field_validator

from pipeline.config.base import Section
from pipeline.schemas.result import Route

FIELDS = frozenset({"label", "score", "source", "route", "ts_ns", "action"})
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def _check_template(value: str) -> str:
    template = string.Template(value)
    if not template.is_valid():
        raise ValueError(f"invalid template {value!r}: write $$ for a literal $")
    unknown = set(template.get_identifiers()) - FIELDS
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)} in {value!r}; use {sorted(FIELDS)}")
    return value


class ActionWhen(Section):
    """Which decisions trigger an action; every given condition must hold."""

    labels: list[str] | None = Field(
        default=None, description="Labels that trigger it (e.g. crack, anomaly); any when absent"
    )
    min_score: float = Field(default=0.0, ge=0, description="Lowest score (probability/anomaly)")
    routes: list[Route] | None = Field(
        default=None,
        description="Routes that trigger it; any when absent. 'confident' also matches "
        "'audit' (a confident decision that was also sampled for audit)",
    )
    sources: list[str] | None = Field(
        default=None, description="Source names that trigger it; any when absent"
    )


class MqttDo(Section):
    """Publish an MQTT message."""

    type: Literal["mqtt"] = "mqtt"
    topic: str = Field(min_length=1, max_length=1024, description="Topic, e.g. plant/line1/stop")
    payload: str = Field(default="", max_length=65_536, description="Payload template")
    qos: Literal[0, 1, 2] = Field(default=1, description="MQTT QoS")
    retain: bool = Field(default=False, description="Retain on the broker")

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        if "+" in value or "#" in value or "\x00" in value:
            raise ValueError("a publish topic may not contain '+', '#' or NUL")
        return value

    _payload = field_validator("payload")(_check_template)


class CommandDo(Section):
    """Run a command (no shell unless you call one: argv[0] is the program)."""

    type: Literal["command"] = "command"
    argv: list[str] = Field(min_length=1, description="Program and arguments, templates allowed")
    timeout_s: float = Field(default=5.0, gt=0, le=3600, description="Kill it after this long")

    @field_validator("argv")
    @classmethod
    def _argv(cls, value: list[str]) -> list[str]:
        return [_check_template(v) for v in value]


class ActionConfig(Section):
    """One local action: a name, when it fires, what it does, and its cooldown."""

    name: str = Field(pattern=_NAME, description="Action name, reported in results")
    when: ActionWhen = Field(default_factory=ActionWhen, description="Trigger conditions")
    do: Annotated[MqttDo | CommandDo, Field(discriminator="type")] = Field(
        description="What to do: {type: mqtt, ...} or {type: command, ...}"
    )
    cooldown_s: float = Field(
        default=2.0, ge=0, description="Do not fire again (for any source) within this time"
    )
