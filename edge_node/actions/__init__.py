"""Local actions on decisions (MQTT message or command), without the cloud."""

from edge_node.actions.config import ActionConfig, ActionWhen, CommandDo, MqttDo
from edge_node.actions.runner import ActionError, ActionEvent, ActionRunner

__all__ = [
    "ActionConfig",
    "ActionError",
    "ActionEvent",
    "ActionRunner",
    "ActionWhen",
    "CommandDo",
    "MqttDo",
]
