"""The edge side of edgeloop: sources, INT8 runtime, router, outbox, MQTT, OTA."""
