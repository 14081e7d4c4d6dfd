"""Alert rules from YAML: one frozen config class per rule ``kind``.

A rules file is a list under ``rules:``; each rule has a unique ``id`` (the
``rule`` tag of its alerts), a ``severity``, a ``cooldown_s`` (after a rule fired
for a subject, it does not fire again for that subject within the cooldown) and
the settings of its kind. See configs/alerts.example.yaml.
"""

from __future__ import annotations

__all__ = [
    "RULE_KINDS",
    "AnomalySustainedRule",
    "DefectRateRule",
    "DeviceOfflineRule",
    "DriftAgreementRule",
    "DriftPsiRule",
    "Rule",
    "RuleBase",
    "RulesConfig",
    "TelemetryGaugeRule",
    "load_rules",
    "parse_rules",
]

import os
import re
from collections.abc import Mapping
from typing import Annotated, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from pipeline.config.base import Section
from pipeline.config.loader import parse_config, read_config_text
from pipeline.errors import ConfigError, ConfigProblem
from pipeline.schemas.base import Label, SafeId

_WEEK_S = 7 * 86_400
MAX_BUCKETS = 1_440


class RuleBase(Section):
    """Settings every rule has."""

    id: SafeId = Field(description="Unique rule id; the 'rule' tag of its alerts")
    severity: Literal["info", "warning", "critical"] = Field(
        default="warning", description="Severity of its alerts"
    )
    cooldown_s: float = Field(
        default=600,
        ge=0,
        le=_WEEK_S,
        description="After firing for a subject, do not fire again for it within this time",
    )
    description: str = Field(default="", max_length=512, description="What the rule is for")
    enabled: bool = Field(default=True, description="false keeps the rule in the file but idle")


class _Windowed(RuleBase):
    """A rule evaluated over a hopping window of event time."""

    window_s: int = Field(default=300, ge=1, le=_WEEK_S, description="Window length, seconds")
    step_s: int = Field(
        default=60, ge=1, le=_WEEK_S, description="Hop of the window, seconds; divides window_s"
    )

    @model_validator(mode="after")
    def _steps(self) -> _Windowed:
        if self.window_s % self.step_s:
            raise ValueError(f"window_s ({self.window_s}) must be a multiple of step_s")
        if self.window_s // self.step_s > MAX_BUCKETS:
            raise ValueError(f"window_s / step_s must be at most {MAX_BUCKETS}; raise step_s")
        return self


class DefectRateRule(_Windowed):
    """Share of classify results whose label is a defect, per line or device, above a threshold.

    Every classify result counts (confident or not; its label is the edge's top-1).
    With fewer than ``min_samples`` results in the window the alert keeps its state.
    Line rules ignore results without a ``line``.
    """

    kind: Literal["defect_rate"] = Field(description="Rule kind")
    scope: Literal["line", "device"] = Field(
        default="line", description="Rate per production line, or per device"
    )
    threshold: float = Field(
        gt=0, le=1, description="Defect share that fires, as a fraction (0.05 = 5%)"
    )
    min_samples: int = Field(
        default=50, ge=1, le=10_000_000, description="Results needed in the window to judge"
    )
    ok_labels: list[Label] = Field(
        default_factory=lambda: ["ok"], min_length=1, description="Labels that are not defects"
    )


class AnomalySustainedRule(RuleBase):
    """A sensor anomaly that lasts, per device and source.

    Counts consecutive anomaly results (``task: anomaly``) by arrival: it fires after
    ``for_windows`` in a row with route ``anomalous`` and resolves after
    ``clear_windows`` in a row with any other route. Consecutive results rather
    than a time window, because each result already is one sensor window.
    """

    kind: Literal["anomaly_sustained"] = Field(description="Rule kind")
    for_windows: int = Field(
        default=3, ge=1, le=10_000, description="Consecutive anomalous windows that fire"
    )
    clear_windows: int = Field(
        default=3, ge=1, le=10_000, description="Consecutive normal windows that resolve"
    )


class DeviceOfflineRule(RuleBase):
    """A device that went offline (status, last will) or went silent, for ``after_s``.

    Down since: the newest event time heard from the device (any status, result or
    telemetry). Fires when its last status is ``offline``, or nothing has been
    heard, for ``after_s`` of wall-clock time (checked on tick). Resolves when an
    ``online``/``degraded`` status arrives, or any message after a silence.
    """

    kind: Literal["device_offline"] = Field(description="Rule kind")
    after_s: float = Field(
        default=300, gt=0, le=_WEEK_S, description="How long offline or silent before firing"
    )


class DriftAgreementRule(_Windowed):
    """Edge/teacher agreement below a threshold, per device and edge model version."""

    kind: Literal["drift_agreement"] = Field(description="Rule kind")
    window_s: int = Field(default=3600, ge=1, le=_WEEK_S, description="Window length, seconds")
    step_s: int = Field(
        default=300, ge=1, le=_WEEK_S, description="Hop of the window, seconds; divides window_s"
    )
    threshold: float = Field(
        default=0.85, gt=0, le=1, description="Agreement share below which it fires (0.85 = 85%)"
    )
    min_verdicts: int = Field(
        default=30, ge=1, le=10_000_000, description="Verdicts needed in the window to judge"
    )
    worst_classes: int = Field(
        default=3, ge=1, le=10, description="How many of the worst classes the alert names"
    )


class DriftPsiRule(_Windowed):
    """Shift of the edge's score distribution (PSI against the manifest's reference).

    Per device and model version; models whose manifest has no ``score_reference``
    are skipped. PSI reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major.
    """

    kind: Literal["drift_psi"] = Field(description="Rule kind")
    window_s: int = Field(default=3600, ge=1, le=_WEEK_S, description="Window length, seconds")
    step_s: int = Field(
        default=300, ge=1, le=_WEEK_S, description="Hop of the window, seconds; divides window_s"
    )
    threshold: float = Field(default=0.25, gt=0, le=100, description="PSI above which it fires")
    min_results: int = Field(
        default=200, ge=1, le=10_000_000, description="Results needed in the window to judge"
    )


class TelemetryGaugeRule(RuleBase):
    """A telemetry gauge of a device (e.g. ``outbox.depth``) above or below a limit."""

    kind: Literal["telemetry_gauge"] = Field(description="Rule kind")
    gauge: str = Field(
        pattern=r"^[a-z][a-z0-9_.]{0,127}$", description="Gauge name, e.g. outbox.depth"
    )
    above: float | None = Field(default=None, description="Fires when the gauge exceeds this")
    below: float | None = Field(default=None, description="Fires when the gauge is under this")
    for_samples: int = Field(
        default=1, ge=1, le=10_000, description="Consecutive telemetry snapshots out of range"
    )

    @model_validator(mode="after")
    def _limit(self) -> TelemetryGaugeRule:
        if self.above is None and self.below is None:
            raise ValueError("set 'above', 'below' or both")
        if self.above is not None and self.below is not None and self.below >= self.above:
            raise ValueError("'below' must be less than 'above'")
        return self


Rule = Annotated[
    DefectRateRule
    | AnomalySustainedRule
    | DeviceOfflineRule
    | DriftAgreementRule
    | DriftPsiRule
    | TelemetryGaugeRule,
    Field(discriminator="kind"),
]

RULE_KINDS = (
    "defect_rate",
    "anomaly_sustained",
    "device_offline",
    "drift_agreement",
    "drift_psi",
    "telemetry_gauge",
)


class RulesConfig(Section):
    """The alert rules of the cloud workers."""

    rules: list[Rule] = Field(
        default_factory=list, max_length=1000, description="Alert rules; ids must be unique"
    )

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: list[Rule]) -> list[Rule]:
        first: dict[str, int] = {}
        for i, rule in enumerate(rules):
            if rule.id in first:
                raise ValueError(
                    f"rule id {rule.id!r} is used by rules[{first[rule.id]}] and rules[{i}]; "
                    "ids must be unique"
                )
            first[rule.id] = i
        return rules


_TAG = re.compile(r"\[(\d+)\]\.(" + "|".join(RULE_KINDS) + r")(?=\.|$)")
_DUPLICATE = re.compile(r"is used by rules\[\d+\] and rules\[(\d+)\]")
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_rules(
    text: str, *, source: str = "<string>", env: Mapping[str, str] | None = None
) -> RulesConfig:
    """Parse a rules YAML text.

    Raises:
        ConfigError: Every problem, as ``file:line: path: message``.
    """
    try:
        return parse_config(text, RulesConfig, source=source, env=env)
    except ConfigError as exc:
        relocated = _relocate(exc, text)
        if relocated is exc:
            raise
        raise relocated from exc


def load_rules(
    path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
) -> RulesConfig:
    """Read and validate a rules YAML file (``${ENV}`` substitution as in every config).

    Raises:
        ConfigError: The file is missing, unreadable or invalid; every problem
            with its line.
    """
    text = read_config_text(
        path, hint="pass the path of an existing file; configs/alerts.example.yaml is an example"
    )
    return parse_rules(text, source=str(path), env=env)


def _relocate(exc: ConfigError, text: str) -> ConfigError:
    """Point problems at the field they are about, with its line.

    Drops the ``kind`` tag pydantic puts in a rule's error path (the shared loader
    only strips a tag named ``type``), and moves a duplicate id to the second rule.
    """
    changed = False
    problems: list[ConfigProblem] = []
    for problem in exc.problems:
        path = _TAG.sub(r"[\1]", problem.path)
        duplicate = _DUPLICATE.search(problem.message)
        if duplicate and path == "rules":
            path = f"rules[{duplicate.group(1)}].id"
        if path != problem.path:
            changed = True
            line = _line_of(text, path) or problem.line
            problems.append(ConfigProblem(path, problem.message, line))
        else:
            problems.append(problem)
    return ConfigError(exc.file, problems) if changed else exc


def _line_of(text: str, dotted: str) -> int | None:
    """1-based line of the YAML node at ``dotted`` (e.g. ``rules[0].threshold``), if any."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for name, index in _PART.findall(dotted):
        if isinstance(node, yaml.MappingNode) and name:
            match = [(k, v) for k, v in node.value if getattr(k, "value", None) == name]
            if not match:
                break
            key, node = match[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and index and int(index) < len(node.value):
            node = node.value[int(index)]
            line = node.start_mark.line + 1
        else:
            break
    return line
