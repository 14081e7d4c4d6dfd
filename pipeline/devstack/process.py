"""Start, find and stop one background service process, tracked by a pid file."""

from __future__ import annotations

__all__ = ["ManagedProcess", "wait_until"]

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import DevstackError


def wait_until(
    check: Callable[[], str | None],
    *,
    timeout: float,
    interval: float = 0.2,
    alive: Callable[[], bool] | None = None,
) -> str | None:
    """Poll ``check`` (None means ready) until it passes, time runs out or ``alive`` fails.

    Returns:
        None when ready, else the last problem reported.
    """
    deadline = time.monotonic() + timeout
    problem: str | None = "not checked"
    while time.monotonic() < deadline:
        problem = check()
        if problem is None:
            return None
        if alive is not None and not alive():
            return f"process exited ({problem})"
        time.sleep(interval)
    return problem


class ManagedProcess:
    """A process we started in its own session, remembered in ``<dir>/pid``.

    The pid file records the command line so that a recycled pid is never
    mistaken for ours: ``down`` stops only what ``up`` started.
    """

    def __init__(self, name: str, state_dir: Path):
        self.name = name
        self.state_dir = state_dir
        self.pid_file = state_dir / "pid"
        self.log_file = state_dir / "log" / f"{name}.out"

    def _read(self) -> dict[str, object] | None:
        try:
            data = json.loads(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    @staticmethod
    def _cmdline(pid: int) -> list[str] | None:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return [a.decode(errors="replace") for a in raw.split(b"\0") if a]

    @staticmethod
    def _zombie(pid: int) -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat.rsplit(")", 1)[-1].split()[0] in {"Z", "X"}:
            # Reap it if it is our child (a service started by this Python process).
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return True
        return False

    def pid(self) -> int | None:
        """Pid of our running process, or None."""
        data = self._read()
        if not data:
            return None
        pid, argv = data.get("pid"), data.get("argv")
        if not isinstance(pid, int) or not isinstance(argv, list):
            return None
        current = self._cmdline(pid)
        if current is None or current != argv or self._zombie(pid):
            return None
        return pid

    def running(self) -> bool:
        """True while our process is alive."""
        return self.pid() is not None

    def start(
        self, argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> int:
        """Spawn ``argv`` detached (own session), output appended to the log file."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} start {argv}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=env,
                    cwd=cwd,
                    close_fds=True,
                )
            except OSError as exc:
                raise DevstackError(
                    f"cannot start {argv[0]}: {exc}",
                    where=self.name,
                    hint="check that it is installed and executable",
                ) from exc
        # /proc shows the final argv only after exec; record what the kernel reports.
        argv_seen = argv
        for _ in range(50):
            seen = self._cmdline(proc.pid)
            if seen:
                argv_seen = seen
                break
            time.sleep(0.01)
        self.pid_file.write_text(json.dumps({"pid": proc.pid, "argv": argv_seen}))
        # Detach: the service outlives this command, and must not become our zombie.
        proc.returncode = 0
        return proc.pid

    def signal(self, sig: int) -> bool:
        """Send ``sig`` to our process; False if it is not running."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        return True

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM, wait, then SIGKILL. Returns True if something was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        if self._zombie(pid):
            self.pid_file.unlink(missing_ok=True)
            return True
        os.kill(pid, signal.SIGCONT)  # a SIGSTOPped process cannot handle SIGTERM
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while self.pid() is not None:
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True
