"""Typed, frozen config models and the YAML loader."""

from pipeline.config.base import (
    HealthConfig,
    InfluxConfig,
    KafkaConfig,
    LoggingConfig,
    MetricsConfig,
    MqttConfig,
    Section,
    TlsConfig,
)
from pipeline.config.devstack import DevstackConfig
from pipeline.config.loader import load_config, parse_config, validate_config_file

__all__ = [
    "DevstackConfig",
    "HealthConfig",
    "InfluxConfig",
    "KafkaConfig",
    "LoggingConfig",
    "MetricsConfig",
    "MqttConfig",
    "Section",
    "TlsConfig",
    "load_config",
    "parse_config",
    "validate_config_file",
]
