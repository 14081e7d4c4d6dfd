"""The local stack as a whole: Mosquitto, Kafka and InfluxDB on loopback."""

from __future__ import annotations

__all__ = ["SERVICE_NAMES", "Devstack"]

import time
from typing import Any

from pipeline.config.devstack import DevstackConfig
from pipeline.devstack.influxdb import InfluxCredentials, InfluxService, load_credentials
from pipeline.devstack.kafka import KafkaService
from pipeline.devstack.mosquitto import MosquittoService
from pipeline.devstack.service import Health, Progress, Service
from pipeline.errors import DevstackError

SERVICE_NAMES = ("mosquitto", "kafka", "influxdb")


class Devstack:
    """Start, stop and inspect the local services.

    Args:
        config: Ports, versions and directories.
        progress: Called with one line per step of a long operation.
    """

    def __init__(self, config: DevstackConfig | None = None, progress: Progress | None = None):
        self.config = config or DevstackConfig()
        self.progress: Progress = progress or (lambda _msg: None)
        self.mosquitto = MosquittoService(self.config, self.progress)
        self.kafka = KafkaService(self.config, self.progress)
        self.influxdb = InfluxService(self.config, self.progress)
        self.services: dict[str, Service] = {
            "mosquitto": self.mosquitto,
            "kafka": self.kafka,
            "influxdb": self.influxdb,
        }

    def _enabled(self, name: str) -> bool:
        section = getattr(self.config, name)
        return bool(section.enabled)

    def _select(self, only: list[str] | None) -> list[Service]:
        names = only or [n for n in SERVICE_NAMES if self._enabled(n)]
        unknown = [n for n in names if n not in self.services]
        if unknown:
            raise DevstackError(
                f"unknown service(s) {unknown}", hint=f"choose from {list(SERVICE_NAMES)}"
            )
        return [self.services[n] for n in names]

    def up(self, only: list[str] | None = None) -> list[str]:
        """Start the services that are not running; return the names this call started."""
        started: list[str] = []
        t0 = time.monotonic()
        for svc in self._select(only):
            if svc.start():
                started.append(svc.name)
        self.progress(
            f"devstack: up in {time.monotonic() - t0:.1f}s "
            f"(started: {', '.join(started) or 'nothing, all were running'})"
        )
        return started

    def prepare(self, only: list[str] | None = None) -> None:
        """Install, download and build what the services need, starting nothing."""
        for svc in self._select(only):
            if not svc.external():
                svc.prepare()

    def down(self, only: list[str] | None = None, *, reset: bool = False) -> list[str]:
        """Stop what we started (never a process we did not start); optionally delete data."""
        stopped = []
        for svc in reversed(self._select(only)):
            if svc.stop():
                stopped.append(svc.name)
                self.progress(f"{svc.name}: stopped")
            if reset:
                svc.reset()
                self.progress(f"{svc.name}: data deleted")
        return stopped

    def status(self) -> list[Health]:
        """Health of every enabled service."""
        return [svc.health() for svc in self._select(None)]

    def healthy(self) -> bool:
        """True when every enabled service answers."""
        return all(h.healthy for h in self.status())

    def status_json(self) -> dict[str, Any]:
        """What ``status --json`` prints."""
        services = [h.as_dict() for h in self.status()]
        return {
            "healthy": all(s["healthy"] for s in services),
            "run_dir": str(self.config.resolved_run_dir),
            "cache_dir": str(self.config.cache_dir),
            "services": services,
        }

    def influx_credentials(self) -> InfluxCredentials:
        """Tokens and ids of the onboarded InfluxDB."""
        return load_credentials(self.influxdb.credentials_file)

    @property
    def mqtt_address(self) -> tuple[str, int]:
        """(host, port) of Mosquitto."""
        return self.config.host, self.config.mosquitto.port

    @property
    def kafka_bootstrap(self) -> str:
        """host:port of Kafka."""
        return f"{self.config.host}:{self.config.kafka.port}"
