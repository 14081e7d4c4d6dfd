"""MQTT-to-Kafka bridge: acknowledges a device's message only once Kafka has it."""

from cloud_stream.bridge.config import BridgeConfig
from cloud_stream.bridge.translate import DeadLetter, KafkaRecord, translate

__all__ = ["BridgeConfig", "DeadLetter", "KafkaRecord", "translate"]
