"""The cloud side of edgeloop: MQTT-to-Kafka bridge, Faust workers, sinks, lifecycle."""
