"""Shared contracts of edgeloop: message schemas, topics, config, errors, CLI, devstack.

This package stays light on purpose (stdlib, pydantic, PyYAML): an edge device
imports it without OpenCV's cloud cousins, Kafka, Faust or torch.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
