"""Local services for development, tests and the demo (stdlib only)."""

from pipeline.devstack.influxdb import InfluxCredentials, load_credentials
from pipeline.devstack.service import Health, Service
from pipeline.devstack.stack import SERVICE_NAMES, Devstack

__all__ = [
    "SERVICE_NAMES",
    "Devstack",
    "Health",
    "InfluxCredentials",
    "Service",
    "load_credentials",
]
