"""What every local service has: a state directory, a process, a health check."""

from __future__ import annotations

__all__ = ["Health", "Progress", "Service"]

import shutil
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config.devstack import DevstackConfig
from pipeline.devstack.probes import port_open
from pipeline.devstack.process import ManagedProcess, wait_until
from pipeline.errors import DevstackError

Progress = Callable[[str], None]


@dataclass
class Health:
    """One service's state as ``status`` reports it."""

    name: str
    address: str
    healthy: bool
    managed: bool
    pid: int | None
    detail: str
    version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out: dict[str, Any] = {
            "name": self.name,
            "address": self.address,
            "healthy": self.healthy,
            "managed": self.managed,
            "pid": self.pid,
            "version": self.version,
            "detail": self.detail,
        }
        out.update(self.extra)
        return out


class Service(ABC):
    """A local service: prepared once (cached), started detached, checked by a probe."""

    name: str = ""

    def __init__(self, config: DevstackConfig, progress: Progress | None = None):
        self.config = config
        self.host = config.host
        self.cache_dir = config.cache_dir.expanduser()
        self.state_dir = config.resolved_run_dir / self.name
        self.data_dir = self.state_dir / "data"
        self.log_dir = self.state_dir / "log"
        self.conf_dir = self.state_dir / "conf"
        self.process = ManagedProcess(self.name, self.state_dir)
        self.progress: Progress = progress or (lambda _msg: None)

    # --- what each service defines -------------------------------------------------
    @property
    @abstractmethod
    def port(self) -> int:
        """The port clients use."""

    @property
    @abstractmethod
    def address(self) -> str:
        """URL-like address for people and clients."""

    @abstractmethod
    def prepare(self) -> None:
        """Install, download or build what the service needs (cached after the first time)."""

    @abstractmethod
    def argv(self) -> list[str]:
        """Write the config files and return the command line."""

    @abstractmethod
    def probe(self) -> str | None:
        """None when the service answers its protocol, else what is wrong."""

    def version(self) -> str | None:
        """Version string of what runs, if known."""
        return None

    def after_start(self) -> None:
        """One-time setup once healthy (e.g. InfluxDB onboarding)."""

    def extra_status(self) -> dict[str, Any]:
        """More fields for ``status --json``."""
        return {}

    # --- shared behaviour ----------------------------------------------------------
    def external(self) -> bool:
        """True when this service is not ours to start (an existing server is configured)."""
        return False

    def ports(self) -> list[int]:
        """Every port the service binds."""
        return [self.port]

    def health(self) -> Health:
        """Probe the service and report."""
        pid = self.process.pid()
        problem = self.probe()
        return Health(
            name=self.name,
            address=self.address,
            healthy=problem is None,
            managed=pid is not None,
            pid=pid,
            detail="ok" if problem is None else problem,
            version=self.version(),
            extra=self.extra_status() if problem is None else {},
        )

    def start(self) -> bool:
        """Start and wait until healthy. Returns False if it was already running (ours).

        Raises:
            DevstackError: when a port is taken by another process or the start fails.
        """
        if self.external():
            problem = self.probe()
            if problem:
                raise DevstackError(
                    f"configured server at {self.address} is not healthy: {problem}",
                    where=self.name,
                )
            self.after_start()
            return False
        if self.process.running():
            problem = wait_until(
                self.probe, timeout=self.config.start_timeout_s, alive=self.process.running
            )
            if problem is None:
                self.after_start()
                return False
            self.progress(f"{self.name}: running but unhealthy ({problem}); restarting")
            self.process.stop()
        for port in self.ports():
            if port_open(self.host, port):
                raise DevstackError(
                    f"port {port} on {self.host} is taken by another process",
                    where=self.name,
                    hint=f"stop that process, or choose another port in the devstack config "
                    f"(devstack.{self.name}.port)",
                )
        self.prepare()
        for d in (self.data_dir, self.log_dir, self.conf_dir):
            d.mkdir(parents=True, exist_ok=True)
        argv = self.argv()
        t0 = time.monotonic()
        self.progress(f"{self.name}: starting on {self.address}")
        self.process.start(argv, env=self.env())
        problem = wait_until(
            self.probe, timeout=self.config.start_timeout_s, alive=self.process.running
        )
        if problem is not None:
            tail = self.log_tail(20)
            self.process.stop(timeout=5)
            raise DevstackError(
                f"did not become healthy: {problem}\n--- last log lines ---\n{tail}",
                where=self.name,
                hint=f"see the logs in {self.log_dir}",
            )
        self.after_start()
        self.progress(f"{self.name}: healthy after {time.monotonic() - t0:.1f}s")
        return True

    def env(self) -> dict[str, str] | None:
        """Environment for the process (None: inherit)."""
        return None

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop our process (only ours). Returns True if something was stopped."""
        return self.process.stop(timeout=timeout)

    def kill(self, sig: int = signal.SIGKILL) -> bool:
        """Send a signal to our process (fault tests: SIGKILL, SIGSTOP, SIGCONT)."""
        return self.process.signal(sig)

    def log_files(self) -> list[Path]:
        """Log files of this service, newest last."""
        if not self.log_dir.exists():
            return []
        return sorted(self.log_dir.glob("*"), key=lambda p: p.stat().st_mtime)

    def log_tail(self, lines: int = 50) -> str:
        """The last ``lines`` lines of every log file."""
        out = []
        for f in self.log_files():
            try:
                text = f.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            out.append(f"==> {f} <==")
            out.extend(text)
        return "\n".join(out)

    def reset(self) -> None:
        """Delete the service's data (it must be stopped)."""
        if self.process.running():
            raise DevstackError("stop the service before deleting its data", where=self.name)
        shutil.rmtree(self.state_dir, ignore_errors=True)
