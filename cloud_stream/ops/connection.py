"""Connection options shared by ``edgeloop alerts`` and ``edgeloop fleet``, and the query.

Where the connection comes from, first match wins for each setting: the
``--url/--org/--bucket/--token`` flags, ``$EDGELOOP_INFLUX_TOKEN`` (the token only),
the ``influx:`` section of ``--config`` (a cloud worker YAML), then the defaults;
with no token anywhere, the local devstack's read token.
"""

from __future__ import annotations

__all__ = [
    "TOKEN_ENV",
    "add_connection_options",
    "duration_arg",
    "influx_config_from_args",
    "load_influx_section",
    "query_rows",
    "text_arg",
]

import argparse
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloud_stream.influx import make_client
from cloud_stream.ops.flux import parse_duration
from pipeline.config.base import InfluxConfig
from pipeline.config.loader import parse_config, read_config_text
from pipeline.errors import ConfigError, ConfigProblem, EdgeloopError

#: Environment variable read for the token when ``--token`` is not given.
TOKEN_ENV = "EDGELOOP_INFLUX_TOKEN"  # noqa: S105 (a variable name, not a secret)
_FLAGS = {"url": "--url", "org": "--org", "bucket": "--bucket", "token": "--token"}


class _InfluxOnly(BaseModel):
    """The ``influx:`` section of a larger file; the other sections belong to others."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    influx: InfluxConfig = Field(default_factory=InfluxConfig, description="InfluxDB")


def duration_arg(text: str) -> timedelta:
    """``argparse`` type for durations (``90s``, ``30m``, ``1h``, ``2d``)."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def text_arg(text: str) -> str:
    """``argparse`` type for filter values: any text that can be sent as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid text") from exc
    return text


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--config``, ``--url``, ``--org``, ``--bucket``, ``--token`` and ``--timeout``."""
    group = parser.add_argument_group(
        "InfluxDB connection",
        "flags override the --config file's influx: section; without a token anywhere, "
        "the local devstack's read token is used",
    )
    group.add_argument(
        "--config", type=Path, metavar="FILE", help="cloud worker YAML; only influx: is read"
    )
    group.add_argument("--url", help="InfluxDB base URL (default http://127.0.0.1:8086)")
    group.add_argument("--org", help="organization (default edgeloop)")
    group.add_argument("--bucket", help="bucket (default edgeloop)")
    group.add_argument(
        "--token", help=f"API token with read access (default: ${TOKEN_ENV}, then the config)"
    )
    group.add_argument("--timeout", type=float, metavar="SECONDS", help="HTTP timeout (default 10)")


def load_influx_section(path: Path) -> InfluxConfig:
    """Read and validate the ``influx:`` section of a YAML file, ignoring the rest.

    ``${VAR}`` references inside the section are replaced from the environment,
    as the services do.

    Raises:
        ConfigError: the file is missing, not YAML, or the section is invalid.
    """
    text = read_config_text(
        path, hint="pass the cloud worker YAML with --config, or use --url/--org/--bucket/--token"
    )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = ConfigProblem("", f"not valid YAML: {getattr(exc, 'problem', exc)}", line)
        raise ConfigError(str(path), [problem]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problem = ConfigProblem("", f"must be a mapping of settings, got {type(data).__name__}")
        raise ConfigError(str(path), [problem])
    section = data.get("influx")
    if section is None:
        return InfluxConfig()
    # Validate the section alone, so a missing ${VAR} of another section is not our error.
    # Line numbers would point into this re-dumped text, not the file: leave them out.
    alone = yaml.safe_dump({"influx": section}, sort_keys=False)
    try:
        return parse_config(alone, _InfluxOnly, source=str(path)).influx
    except ConfigError as exc:
        problems = [ConfigProblem(p.path, p.message) for p in exc.problems]
        raise ConfigError(str(path), problems) from exc


def influx_config_from_args(args: argparse.Namespace) -> InfluxConfig:
    """The connection the flags, the environment and ``--config`` describe.

    Raises:
        ConfigError: ``--config`` is invalid.
        EdgeloopError: a flag has an invalid value.
    """
    base = load_influx_section(args.config) if args.config is not None else InfluxConfig()
    settings: dict[str, Any] = base.model_dump()
    if base.token is not None:
        settings["token"] = base.token.get_secret_value()
    env_token = os.environ.get(TOKEN_ENV)
    if env_token:
        settings["token"] = env_token
    for key in _FLAGS:
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = value
    if getattr(args, "timeout", None) is not None:
        settings["timeout_s"] = args.timeout
    try:
        return InfluxConfig.model_validate(settings)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        flag = _FLAGS.get(field, "--timeout" if field == "timeout_s" else field)
        raise EdgeloopError(
            f"invalid value: {err['msg']}", where=flag, hint=f"check the value of {flag}"
        ) from exc


def query_rows(config: InfluxConfig, flux: str) -> list[dict[str, Any]]:
    """Run ``flux`` with the read token and return every record's values.

    Raises:
        EdgeloopError: InfluxDB is unreachable, refuses the token, lacks the
            bucket or org, or fails the query; the message says what to do.
    """
    from influxdb_client.rest import ApiException
    from urllib3.exceptions import HTTPError

    where = f"InfluxDB at {config.url}"
    try:
        with make_client(config, role="read") as client:
            tables = client.query_api().query(flux, org=config.org)
    except ApiException as exc:
        raise _api_error(exc, config, where) from exc
    except (HTTPError, OSError) as exc:
        raise EdgeloopError(
            f"cannot reach InfluxDB: {_reason(exc)}",
            where=where,
            hint="check --url (or influx.url in --config); for the local stack run "
            "'edgeloop devstack up'",
        ) from exc
    return [dict(record.values) for table in tables for record in table.records]


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason if reason is not None else exc)
    # urllib3 prefixes the connection's repr: "HTTPConnection(host=..., port=1): Failed..."
    return text.split("): ", 1)[-1]


def _api_error(exc: Any, config: InfluxConfig, where: str) -> EdgeloopError:
    status = getattr(exc, "status", None)
    message = getattr(exc, "message", None) or str(exc).splitlines()[0]
    if status in (401, 403):
        return EdgeloopError(
            f"InfluxDB refused the token ({status} {message})",
            where=where,
            hint="pass a token with read access to the bucket: --token, $"
            f"{TOKEN_ENV}, or influx.token in --config",
        )
    if status == 404:
        return EdgeloopError(
            f"not found: {message}",
            where=where,
            hint=f"check the org ({config.org!r}, --org) and the bucket "
            f"({config.bucket!r}, --bucket)",
        )
    return EdgeloopError(
        f"query failed ({status}): {message}",
        where=where,
        hint="check that the server is InfluxDB 2 and the token may read the bucket",
    )
