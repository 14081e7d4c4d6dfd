"""Settings of the local development stack (``edgeloop devstack``)."""

from __future__ import annotations

__all__ = [
    "DevstackConfig",
    "InfluxServiceConfig",
    "KafkaServiceConfig",
    "MosquittoServiceConfig",
    "default_cache_dir",
]

import os
from pathlib import Path

from pydantic import Field, SecretStr

from pipeline.config.base import Section


def default_cache_dir() -> Path:
    """``$EDGELOOP_CACHE``, else ``$XDG_CACHE_HOME/edgeloop``, else ``~/.cache/edgeloop``."""
    if env := os.environ.get("EDGELOOP_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "edgeloop"


class MosquittoServiceConfig(Section):
    """Local Mosquitto 2 broker."""

    enabled: bool = Field(default=True, description="Start Mosquitto")
    port: int = Field(default=1883, ge=1, le=65535, description="MQTT listener port")
    binary: str = Field(default="mosquitto", description="mosquitto executable")
    install_with_apt: bool = Field(
        default=True, description="apt-get install mosquitto when it is missing (needs root)"
    )
    autosave_interval_s: int = Field(
        default=10,
        ge=0,
        le=86_400,
        description="Seconds between persistence saves; queued messages survive a clean stop",
    )
    max_queued_messages: int = Field(
        default=1_000_000,
        ge=0,
        description="QoS 1 messages queued per offline persistent session (0: no limit)",
    )
    max_inflight_messages: int = Field(
        default=0, ge=0, le=65535, description="Outgoing in-flight window per client (0: no limit)"
    )


class KafkaServiceConfig(Section):
    """Local Apache Kafka, single node in KRaft mode, from the jars on Maven Central."""

    enabled: bool = Field(default=True, description="Start Kafka")
    version: str = Field(
        default="4.4.0", pattern=r"^\d+\.\d+\.\d+$", description="Apache Kafka version"
    )
    scala: str = Field(default="2.13", description="Scala build of the kafka jar")
    port: int = Field(default=9092, ge=1, le=65535, description="Client listener port")
    controller_port: int = Field(default=9093, ge=1, le=65535, description="KRaft controller port")
    partitions: int = Field(default=4, ge=1, le=256, description="Default partitions per topic")
    heap: str = Field(default="768m", pattern=r"^\d+[mg]$", description="JVM heap (-Xmx)")
    java: str = Field(default="java", description="java executable (17 or newer)")
    mvn: str = Field(default="mvn", description="Maven executable, to fetch the jars")


class InfluxServiceConfig(Section):
    """Local InfluxDB 2 OSS, built once from its Go module, or an existing server."""

    enabled: bool = Field(default=True, description="Start InfluxDB")
    version: str = Field(
        default="2.8.0", pattern=r"^\d+\.\d+\.\d+$", description="influxdb/v2 module version"
    )
    port: int = Field(default=8086, ge=1, le=65535, description="HTTP port")
    binary: str | None = Field(
        default=None,
        description="Use this influxd instead of building one (also $EDGELOOP_INFLUXD)",
    )
    url: str | None = Field(
        default=None, description="Use this running server instead of starting one"
    )
    token: SecretStr | None = Field(
        default=None, description="All-access token for `url` (also $EDGELOOP_INFLUX_TOKEN)"
    )
    org: str = Field(default="edgeloop", description="Organization created at setup")
    bucket: str = Field(default="edgeloop", description="Default bucket created at setup")
    username: str = Field(default="edgeloop", description="Admin user created at setup")
    retention_s: int = Field(
        default=0, ge=0, description="Retention of the default bucket, seconds (0: forever)"
    )


class DevstackConfig(Section):
    """The whole local stack."""

    host: str = Field(default="127.0.0.1", description="Loopback address every service binds")
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Downloads and builds kept between runs",
    )
    run_dir: Path | None = Field(
        default=None,
        description="Configs, data, logs and pid files of the running services "
        "(default: <cache_dir>/devstack, or $EDGELOOP_RUN_DIR)",
    )
    start_timeout_s: float = Field(default=120, gt=0, description="Wait this long for health")
    mosquitto: MosquittoServiceConfig = Field(default_factory=MosquittoServiceConfig)
    kafka: KafkaServiceConfig = Field(default_factory=KafkaServiceConfig)
    influxdb: InfluxServiceConfig = Field(default_factory=InfluxServiceConfig)

    @property
    def resolved_run_dir(self) -> Path:
        """Where the services keep their state."""
        if self.run_dir is not None:
            return self.run_dir.expanduser()
        if env := os.environ.get("EDGELOOP_RUN_DIR"):
            return Path(env).expanduser()
        return self.cache_dir.expanduser() / "devstack"
