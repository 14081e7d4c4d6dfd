"""Messages -> InfluxDB line protocol, following the data model of docs/influxdb.md.

Every point's time is the message's own ``ts`` (ns) and its tags are bounded
values from the message, so rendering the same message twice gives the same
line, and a replay overwrites points instead of duplicating them.

The functions build strings directly (no ``influxdb_client.Point``): the sink
renders every record that passes through the workers, so a point costs a few
microseconds. Tags are written in key order (what InfluxDB sorts them into
anyway); a tag whose value is absent or empty is left out. Floats are always
rendered with a decimal point or exponent (``1.0``, ``1e+20``) so InfluxDB
types them as floats, integers carry the ``i`` suffix, and a non-finite float
field is skipped, since line protocol cannot carry it.
"""

from __future__ import annotations

__all__ = ["drift_line", "fleet_line", "lines_for"]

from collections.abc import Callable, Iterable
from typing import Any

from pipeline.schemas import AlertV1, ResultV1, StatusV1, TelemetryV1, VerdictV1

# Tag keys, tag values and field keys: comma, equals sign and space are escaped with a
# backslash. Line breaks cannot appear in a tag at all, so they are written as the two
# characters ``\n`` (what influxdb-client does too). A backslash is kept as it is:
# InfluxDB stores it literally.
_KEY_ESCAPES = str.maketrans(
    {",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
)


def _escape_key(value: str) -> str:
    if (
        "," in value
        or "=" in value
        or " " in value
        or "\n" in value
        or "\r" in value
        or "\t" in value
    ):
        return value.translate(_KEY_ESCAPES)
    return value


# Tag values are bounded by design (ids, labels, versions), so escaping them once and
# looking them up afterwards is several times cheaper than checking every time.
_KEY_CACHE: dict[str, str] = {}
_KEY_CACHE_MAX = 65_536


def _key(value: str) -> str:
    """Escape a tag key, tag value or field key."""
    escaped = _KEY_CACHE.get(value)
    if escaped is None:
        escaped = _escape_key(value)
        if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
            _KEY_CACHE.clear()
        _KEY_CACHE[value] = escaped
    return escaped


def _str(value: str) -> str:
    """A string field value: quoted, with backslash and double quote escaped."""
    if "\\" in value or '"' in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{value}"'


def _float(value: float) -> str | None:
    """A float field value, or None when it is NaN or infinite (line protocol has neither)."""
    value = float(value)
    if value - value != 0.0:  # inf - inf and nan - nan are nan
        return None
    return repr(value)


def _int(value: int) -> str:
    """An integer field value (``i`` suffix)."""
    return f"{int(value)}i"


def _tags(pairs: Iterable[tuple[str, str | None]]) -> str:
    """``,key=value`` for every pair with a value; ``pairs`` must be in key order."""
    return "".join(f",{key}={_key(value)}" for key, value in pairs if value)


def _add_float(fields: list[str], key: str, value: float | None) -> None:
    if value is not None:
        text = _float(value)
        if text is not None:
            fields.append(f"{key}={text}")


def _line(measurement: str, tags: str, fields: list[str], ts_ns: int) -> str:
    if not fields:
        raise ValueError(f"a {measurement!r} point needs at least one field")
    return f"{measurement}{tags} {','.join(fields)} {int(ts_ns)}"


def _model_ref(name: str, version: str) -> str:
    return f"{name}@{version}"


# --- one renderer per message type -------------------------------------------------
def _result(m: ResultV1) -> str:
    # The hot path (results are most of the volume): lookups inlined, floats from the
    # schema are already floats, so repr() gives ``1.0`` and only finiteness is checked.
    k = _KEY_CACHE.get
    model = m.model
    line = m.line
    tags = (
        f"result,device={k(m.device) or _key(m.device)},label={k(m.label) or _key(m.label)}"
        f"{f',line={k(line) or _key(line)}' if line else ''}"
        f",model={k(model.name) or _key(model.name)}"
        f",model_version={k(model.version) or _key(model.version)}"
        f",route={k(m.route) or _key(m.route)},site={k(m.site) or _key(m.site)}"
        f",source={k(m.source) or _key(m.source)},task={k(m.task) or _key(m.task)}"
    )
    fields = [f'id="{m.id}",seq={m.seq}i']  # ids match [A-Za-z0-9_-]: nothing to escape
    score, latency = m.score, m.latency_ms
    if score - score == 0.0:
        fields.append(f"score={score!r}")
    if latency - latency == 0.0:
        fields.append(f"latency_ms={latency!r}")
    _add_float(fields, "margin", m.margin)
    _add_float(fields, "entropy", m.entropy)
    if m.frame_id:
        fields.append(f"frame_id={_str(m.frame_id)}")
    if m.action:
        fields.append(f"action={_str(m.action)}")
    anomaly = m.anomaly
    if anomaly is not None:
        _add_float(fields, "threshold", anomaly.threshold)
        for name, value in anomaly.features.items():
            _add_float(fields, _key(f"feature_{name}"), value)
    return f"{tags} {','.join(fields)} {m.ts}"


def _metric_key(prefix: str, name: str) -> str:
    return _key(prefix + name.replace(".", "_"))


def _telemetry(m: TelemetryV1) -> str:
    tags = f",device={_key(m.device)},site={_key(m.site)}"
    # A dict, so two names that differ only in '.' versus '_' give one field, not two.
    values: dict[str, str] = {}
    for name, count in m.counters.items():
        values[_metric_key("c_", name)] = _int(count)
    for name, gauge in m.gauges.items():
        text = _float(gauge)
        if text is not None:
            values[_metric_key("g_", name)] = text
    fields = [f"{key}={text}" for key, text in values.items()]
    _add_float(fields, "uptime_s", m.uptime_s)
    _add_float(fields, "interval_s", m.interval_s)
    return _line("telemetry", tags, fields, m.ts)


def _status(m: StatusV1) -> str:
    tags = f",device={_key(m.device)},site={_key(m.site)},state={_key(m.state)}"
    lost = sum(1 for state in m.sources.values() if state == "lost")
    models = ",".join(_model_ref(ref.name, ref.version) for ref in m.models)
    fields = [
        f"software={_str(m.software)}",
        f"models={_str(models)}",
        f"sources_lost={lost}i",
        f"seq={m.seq}i",
    ]
    if m.reason is not None:
        fields.append(f"reason={_str(m.reason)}")
    return _line("status", tags, fields, m.ts)


def _verdict(m: VerdictV1) -> str:
    tags = _tags(
        (
            ("agree", "true" if m.agree else "false"),
            ("device", m.device),
            ("edge_label", m.edge_label),
            ("edge_model", m.edge_model.name),
            ("edge_model_version", m.edge_model.version),
            ("line", m.line),
            ("reason", m.reason),
            ("site", m.site),
            ("source", m.source),
            ("teacher_label", m.teacher_label),
            ("teacher_model_version", m.teacher_model.version),
        )
    )
    fields = [f"id={_str(m.id)}", f"frame_id={_str(m.frame_id)}", f"result_id={_str(m.result_id)}"]
    _add_float(fields, "edge_score", m.edge_score)
    _add_float(fields, "teacher_score", m.teacher_score)
    _add_float(fields, "latency_ms", m.latency_ms)
    return _line("verdict", tags, fields, m.ts)


def _alert(m: AlertV1) -> str:
    tags = _tags(
        (
            ("line", m.line),
            ("rule", m.rule),
            ("scope", m.scope),
            ("severity", m.severity),
            ("site", m.site),
            ("state", m.state),
            ("subject", m.device),
        )
    )
    fields = [f"id={_str(m.id)}", f"seq={m.seq}i", f"summary={_str(m.summary)}"]
    _add_float(fields, "value", m.value)
    _add_float(fields, "threshold", m.threshold)
    for key, value in m.labels.items():
        fields.append(f"{_key('label_' + key)}={_str(value)}")
    return _line("alert", tags, fields, m.ts)


_RENDERERS: dict[type[Any], Callable[[Any], str]] = {
    ResultV1: _result,
    TelemetryV1: _telemetry,
    StatusV1: _status,
    VerdictV1: _verdict,
    AlertV1: _alert,
}


def lines_for(message: object) -> list[str]:
    """The line-protocol lines of one message (one point per message today).

    Args:
        message: A ``ResultV1``, ``TelemetryV1``, ``StatusV1``, ``VerdictV1`` or ``AlertV1``.

    Returns:
        The lines, without trailing newlines, timestamps in ns.

    Raises:
        TypeError: for any other object (frames, OTA reports and dead letters are not
            written to InfluxDB).
    """
    render = _RENDERERS.get(type(message))
    if render is None:
        for cls, candidate in _RENDERERS.items():
            if isinstance(message, cls):
                render = candidate
                break
        else:
            raise TypeError(
                f"no InfluxDB points for {type(message).__name__}; the sink writes "
                f"{', '.join(sorted(c.__name__ for c in _RENDERERS))}"
            )
    return [render(message)]


def drift_line(
    *,
    site: str,
    device: str,
    model: str,
    model_version: str,
    cls: str,
    ts_ns: int,
    agreement: float | None = None,
    verdicts: int | None = None,
    psi: float | None = None,
    results: int | None = None,
) -> str:
    """One ``drift`` point: edge/teacher agreement and confidence shift of one window.

    Args:
        site: Site id (tag).
        device: Device id (tag).
        model: Edge model name (tag).
        model_version: Edge model version (tag).
        cls: Class label, or ``_all`` for the whole model (tag ``class``).
        ts_ns: End of the window evaluated, UTC ns.
        agreement: Share of verdicts where teacher and edge agree, 0..1.
        verdicts: Verdicts in the window.
        psi: Population stability index of the edge's confidence against the reference.
        results: Edge results in the window.

    Raises:
        ValueError: when every field is None or non-finite (a point needs a field).
    """
    tags = _tags(
        (
            ("class", cls),
            ("device", device),
            ("model", model),
            ("model_version", model_version),
            ("site", site),
        )
    )
    fields: list[str] = []
    _add_float(fields, "agreement", agreement)
    if verdicts is not None:
        fields.append(f"verdicts={_int(verdicts)}")
    _add_float(fields, "psi", psi)
    if results is not None:
        fields.append(f"results={_int(results)}")
    return _line("drift", tags, fields, ts_ns)


def fleet_line(
    *,
    site: str,
    device: str,
    ts_ns: int,
    state: str | None = None,
    model: str | None = None,
    software: str | None = None,
    last_seen_ns: int | None = None,
    outbox_depth: float | None = None,
    escalation_rate: float | None = None,
    results: int | None = None,
) -> str:
    """One ``fleet`` point: a device's row of the fleet table; None values are left out.

    Args:
        site: Site id (tag).
        device: Device id (tag).
        ts_ns: Time of the message that changed the row, UTC ns.
        state: ``online``/``offline``/``degraded``.
        model: ``name@version`` of the model(s) the device runs.
        software: edgeloop version on the device.
        last_seen_ns: Time of the device's latest message, UTC ns.
        outbox_depth: Messages waiting in the device's outbox.
        escalation_rate: Share of decisions sent to the cloud, 0..1.
        results: Results seen from the device.

    Raises:
        ValueError: when every field is None or non-finite.
    """
    tags = f",device={_key(device)},site={_key(site)}"
    fields: list[str] = []
    if state is not None:
        fields.append(f"state={_str(state)}")
    if model is not None:
        fields.append(f"model={_str(model)}")
    if software is not None:
        fields.append(f"software={_str(software)}")
    if last_seen_ns is not None:
        fields.append(f"last_seen_ns={_int(last_seen_ns)}")
    _add_float(fields, "outbox_depth", outbox_depth)
    _add_float(fields, "escalation_rate", escalation_rate)
    if results is not None:
        fields.append(f"results={_int(results)}")
    return _line("fleet", tags, fields, ts_ns)
