"""Base class and shared sections of every service config."""

from __future__ import annotations

__all__ = [
    "HealthConfig",
    "InfluxConfig",
    "KafkaConfig",
    "LoggingConfig",
    "MetricsConfig",
    "MqttConfig",
    "Section",
    "TlsConfig",
    "checked",
]

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from pipeline.errors import TopicError


def checked(check: Callable[[str], str], value: str) -> str:
    """Run a topic/id check in a validator, its error as the ValueError pydantic reports."""
    try:
        return check(value)
    except TopicError as exc:
        raise ValueError(exc.message) from exc


class Section(BaseModel):
    """Base of every config model: frozen, unknown keys are errors, every field described."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class TlsConfig(Section):
    """TLS for a client connection."""

    ca_file: str | None = Field(default=None, description="CA bundle to trust (PEM)")
    cert_file: str | None = Field(default=None, description="Client certificate (PEM)")
    key_file: str | None = Field(default=None, description="Client private key (PEM)")
    insecure: bool = Field(default=False, description="Skip hostname checks (tests only)")


class MqttConfig(Section):
    """Connection to an MQTT v5 broker."""

    host: str = Field(default="127.0.0.1", description="Broker host name or address")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port")
    username: str | None = Field(default=None, description="User name, if the broker asks")
    password: SecretStr | None = Field(
        default=None, description="Password; write ${ENV_VAR} to take it from the environment"
    )
    tls: TlsConfig | None = Field(default=None, description="TLS settings; off when absent")
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keep-alive, seconds")
    session_expiry_s: int = Field(
        default=7 * 86_400,
        ge=0,
        le=2**32 - 1,
        description="How long the broker keeps the session (and queued messages) while away",
    )
    receive_maximum: int = Field(
        default=1000,
        ge=1,
        le=65535,
        description="Unacknowledged QoS 1 messages the broker may send us at once",
    )
    reconnect_min_s: float = Field(default=0.5, gt=0, le=60, description="First reconnect delay")
    reconnect_max_s: float = Field(default=30, gt=0, le=3600, description="Largest reconnect delay")


class KafkaConfig(Section):
    """Connection to a Kafka cluster."""

    bootstrap_servers: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:9092"],
        min_length=1,
        description="host:port of one or more brokers",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="Kafka security protocol"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism when the protocol uses SASL"
    )
    sasl_username: str | None = Field(default=None, description="SASL user")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password (${ENV})")
    tls: TlsConfig | None = Field(default=None, description="TLS settings for SSL protocols")

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port(cls, value: list[str]) -> list[str]:
        for item in value:
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{item!r} is not host:port")
        return value


class InfluxConfig(Section):
    """Connection to an InfluxDB 2 server."""

    url: str = Field(default="http://127.0.0.1:8086", description="Base URL of InfluxDB")
    org: str = Field(default="edgeloop", min_length=1, description="Organization name")
    bucket: str = Field(default="edgeloop", min_length=1, description="Bucket to write to")
    token: SecretStr | None = Field(
        default=None,
        description="API token; ${INFLUX_TOKEN} style. Empty: read from the devstack credentials",
    )
    timeout_s: float = Field(default=10, gt=0, le=300, description="HTTP timeout, seconds")

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class MetricsConfig(Section):
    """Prometheus /metrics endpoint."""

    enabled: bool = Field(default=True, description="Serve /metrics")
    host: str = Field(default="127.0.0.1", description="Address to bind")
    port: int = Field(default=0, ge=0, le=65535, description="Port; 0 picks a free one")


class HealthConfig(Section):
    """HTTP health endpoint."""

    enabled: bool = Field(default=True, description="Serve /healthz")
    host: str = Field(default="127.0.0.1", description="Address to bind")
    port: int = Field(default=0, ge=0, le=65535, description="Port; 0 picks a free one")


class LoggingConfig(Section):
    """Log output of a service."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Least severe level that is printed"
    )
    format: Literal["text", "json"] = Field(default="text", description="Text or JSON lines")
