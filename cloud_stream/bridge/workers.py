"""``workers: N``: one bridge instance as N processes, so it uses N cores.

One Python process tops out at about one core (paho and the Kafka producer
share the GIL). Each worker is a complete bridge in partitioned mode: a plain
subscription and a persistent session of its own (``{instance}-w{i}``), and it
forwards only the devices of its slot, acknowledging the others at once. So a
device still has exactly one writer, which keeps its order in Kafka; a shared
subscription would not (the broker deals one device's messages to every
member). Every guarantee of a single bridge holds per worker: PUBACK after the
Kafka ack, idempotent ``acks=all`` producer, DLQ, ``receive_maximum`` window.

The supervisor forwards SIGTERM/SIGINT to the workers (each drains), and
restarts a worker that dies; its session keeps its messages meanwhile.
"""

from __future__ import annotations

__all__ = ["WorkerPool", "worker_config"]

import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType

from cloud_stream.bridge.config import BridgeConfig, PartitionConfig

logger = logging.getLogger(__name__)

_RESTART_MIN_S, _RESTART_MAX_S = 1.0, 30.0
_STABLE_S = 60.0  # a worker that ran this long restarts after the shortest delay again
_STOP_TIMEOUT_S = 45.0


def worker_config(config: BridgeConfig, index: int) -> BridgeConfig:
    """The settings of worker ``index`` of ``config.workers``.

    Slots nest: worker ``i`` of instance slot ``k`` (of ``count``) takes slot
    ``k + count * i`` of ``count * workers``, a subset of the devices of slot ``k``.
    """
    n = config.workers
    base = config.partition or PartitionConfig(index=0, count=1)
    update: dict[str, object] = {
        "workers": 1,
        "instance": f"{config.instance}-w{index}",
        "partition": PartitionConfig(index=base.index + base.count * index, count=base.count * n),
    }
    for section in ("metrics", "health"):
        cfg = getattr(config, section)
        if cfg.port:
            update[section] = cfg.model_copy(update={"port": cfg.port + index})
    return BridgeConfig.model_validate({**config.model_dump(), **update})


def _worker_main(config: BridgeConfig, parent: int) -> None:
    """Entry point of one worker process (spawned: a fresh interpreter)."""
    from cloud_stream.bridge.service import Bridge
    from pipeline.logs import configure_logging

    # Own process group: a terminal's Ctrl+C reaches the supervisor only, which
    # then asks each worker once to drain (a second signal would skip draining).
    os.setpgid(0, 0)
    configure_logging(config.logging)

    def orphan_watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        logger.warning("supervisor %d is gone: draining", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=orphan_watch, name="orphan-watch", daemon=True).start()
    raise SystemExit(Bridge(config).run())


class WorkerPool:
    """Start, watch and stop the worker processes of one bridge instance.

    Args:
        config: The instance's settings, ``workers`` > 1.
    """

    def __init__(self, config: BridgeConfig):
        self.config = config
        self.configs = [worker_config(config, i) for i in range(config.workers)]
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[BaseProcess | None] = [None] * config.workers
        self._delays = [_RESTART_MIN_S] * config.workers
        self._started = [0.0] * config.workers
        self._stop = threading.Event()

    def _spawn(self, index: int) -> None:
        proc = self._ctx.Process(
            target=_worker_main,
            args=(self.configs[index], os.getpid()),
            name=self.configs[index].instance,
        )
        proc.start()
        self._procs[index] = proc
        self._started[index] = time.monotonic()
        logger.info("worker %s started (pid %s)", proc.name, proc.pid)

    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [p.pid for p in self._procs if p is not None and p.pid is not None]

    def watch(self) -> None:
        """Restart workers that exited while the pool is not stopping."""
        for i, proc in enumerate(self._procs):
            if proc is None or proc.is_alive() or self._stop.is_set():
                continue
            if time.monotonic() - self._started[i] > _STABLE_S:
                self._delays[i] = _RESTART_MIN_S
            logger.error(
                "worker %s exited with %s; restarting in %.0fs",
                proc.name,
                proc.exitcode,
                self._delays[i],
            )
            if self._stop.wait(self._delays[i]):
                return
            self._delays[i] = min(_RESTART_MAX_S, self._delays[i] * 2)
            self._spawn(i)

    def stop(self, timeout: float = _STOP_TIMEOUT_S) -> None:
        """Ask every worker to drain (SIGTERM), wait, then kill what is left."""
        self._stop.set()
        alive = [p for p in self._procs if p is not None and p.is_alive()]
        for proc in alive:
            if proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in alive:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                logger.warning("worker %s did not drain in time: killing it", proc.name)
                proc.kill()
                proc.join(5)

    def run(self) -> int:
        """Run the workers until SIGTERM/SIGINT, then drain them (a second signal kills)."""

        def handler(signum: int, _frame: FrameType | None) -> None:
            if self._stop.is_set():
                logger.warning("second signal: killing the workers")
                for proc in self._procs:
                    if proc is not None and proc.is_alive():
                        proc.kill()
                raise SystemExit(1)
            logger.info(
                "signal %s: draining %d workers", signal.Signals(signum).name, len(self._procs)
            )
            self._stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        for i in range(self.config.workers):
            self._spawn(i)
        logger.info("bridge %s running as %d workers", self.config.instance, self.config.workers)
        while not self._stop.wait(1.0):
            self.watch()
        self.stop()
        return 0
