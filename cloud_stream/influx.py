"""The InfluxDB connection every cloud component shares: token lookup and the client."""

from __future__ import annotations

__all__ = ["influx_token", "make_client"]

from typing import TYPE_CHECKING, Literal

from pipeline.config.base import InfluxConfig
from pipeline.errors import EdgeloopError

if TYPE_CHECKING:
    from influxdb_client.client.influxdb_client import InfluxDBClient

Role = Literal["write", "read"]


def influx_token(config: InfluxConfig, *, role: Role) -> str:
    """The API token: from the config, else the local devstack's scoped token.

    Raises:
        EdgeloopError: when neither is available, saying how to provide one.
    """
    if config.token is not None and config.token.get_secret_value():
        return config.token.get_secret_value()
    from pipeline.devstack.stack import Devstack

    try:
        creds = Devstack().influx_credentials()
    except (OSError, ValueError, EdgeloopError) as exc:
        raise EdgeloopError(
            f"no InfluxDB token: influx.token is not set and the devstack credentials "
            f"could not be read ({exc})",
            where="influx.token",
            hint="set influx.token (e.g. token: ${INFLUX_TOKEN}), or start the local stack "
            "with 'edgeloop devstack up'",
        ) from exc
    return creds.writer_token if role == "write" else creds.reader_token


def make_client(config: InfluxConfig, *, role: Role, gzip: bool = False) -> InfluxDBClient:
    """An ``InfluxDBClient`` for ``config`` with the token of ``role``."""
    from influxdb_client.client.influxdb_client import InfluxDBClient

    return InfluxDBClient(
        url=config.url,
        token=influx_token(config, role=role),
        org=config.org,
        timeout=int(config.timeout_s * 1000),
        enable_gzip=gzip,
    )
