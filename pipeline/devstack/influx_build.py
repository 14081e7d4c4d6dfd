"""Build ``influxd`` (InfluxDB 2 OSS) once from its Go module and cache the binary.

No binary package of InfluxDB 2 reaches our machines, so we build it:

1. a throwaway wrapper module requires ``github.com/influxdata/influxdb/v2/cmd/influxd``
   (``go install pkg@version`` refuses modules whose go.mod has replace directives,
   so we copy that replace into the wrapper);
2. the Flux engine links the Rust library ``libflux``, which InfluxData's
   ``pkg-config`` wrapper builds with cargo on demand;
3. flux pins an old Rust toolchain that cannot be downloaded here, so we force the
   installed stable one, and cap lints that newer Rust turned into errors (a
   ``RUSTC_WRAPPER``, since ``RUSTFLAGS`` skips host builds when cargo cross-targets);
4. no ``assets`` tag: the server runs without its web UI.

The cold build takes about 5-15 minutes on two cores; afterwards it is cached.
"""

from __future__ import annotations

__all__ = ["build_influxd", "influxd_path"]

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

from pipeline.devstack.service import Progress
from pipeline.errors import DevstackError

_MODULE = "github.com/influxdata/influxdb/v2"
_PKG_CONFIG_VERSION = "v0.2.14"
_NATS_REPLACE = (
    "github.com/nats-io/nats-streaming-server@v0.11.2="
    "github.com/influxdata/nats-streaming-server@v0.11.3-0.20201112040610-c277f7560803"
)
_RUSTC_WRAPPER = """#!/bin/sh
# Old crates trip lints that newer Rust denies; cap them to warnings, host builds too.
rustc="$1"; shift
case " $* " in *" --crate-name "*) exec "$rustc" "$@" --cap-lints=warn ;; esac
exec "$rustc" "$@"
"""


def influxd_path(cache_dir: Path, version: str) -> Path:
    """Where the cached binary of ``version`` lives."""
    return cache_dir / "influxdb" / "bin" / f"influxd-v{version}"


def _run(argv: list[str], *, cwd: Path, env: dict[str, str], log: Path, step: str) -> None:
    with log.open("a") as out:
        out.write(f"\n=== {step}: {' '.join(argv)}\n")
        out.flush()
        result = subprocess.run(
            argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise DevstackError(
            f"building influxd failed at step '{step}' (exit {result.returncode}):\n{tail}",
            where="influxdb",
            hint=f"full log: {log}; or point EDGELOOP_INFLUXD at an existing influxd binary",
        )


def build_influxd(cache_dir: Path, version: str, progress: Progress) -> Path:
    """Return the cached influxd binary for ``version``, building it if needed."""
    target = influxd_path(cache_dir, version)
    if target.exists():
        return target
    for tool, hint in (("go", "install Go 1.23 or newer"), ("cargo", "install Rust with rustup")):
        if shutil.which(tool) is None:
            raise DevstackError(
                f"{tool} is needed to build influxd",
                where="influxdb",
                hint=f"{hint}, or set EDGELOOP_INFLUXD to an existing influxd binary",
            )
    root = cache_dir / "influxdb"
    src, bindir = root / f"src-v{version}", root / "bin"
    src.mkdir(parents=True, exist_ok=True)
    bindir.mkdir(parents=True, exist_ok=True)
    log = root / f"build-v{version}.log"
    with (root / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        t0 = time.monotonic()
        progress(
            f"influxdb: building influxd v{version} from its Go module (first time only, "
            f"5-15 min; log: {log})"
        )
        wrapper = bindir / "rustc-cap-lints"
        wrapper.write_text(_RUSTC_WRAPPER)
        wrapper.chmod(0o755)
        env = dict(os.environ)
        env.update(
            GOFLAGS="-mod=mod",
            GOTOOLCHAIN="local",
            RUSTUP_TOOLCHAIN=env.get("EDGELOOP_RUSTUP_TOOLCHAIN", "stable"),
            RUSTC_WRAPPER=str(wrapper),
            CGO_ENABLED="1",
        )
        if not (src / "go.mod").exists():
            _run(
                ["go", "mod", "init", "edgeloop.local/influxd-build"],
                cwd=src,
                env=env,
                log=log,
                step="init wrapper module",
            )
        steps = [
            ("fetch influxdb", ["go", "get", f"{_MODULE}/cmd/influxd@v{version}"]),
            ("copy replace", ["go", "mod", "edit", f"-replace={_NATS_REPLACE}"]),
            (
                "fetch pkg-config",
                ["go", "get", f"github.com/influxdata/pkg-config@{_PKG_CONFIG_VERSION}"],
            ),
            (
                "build pkg-config",
                [
                    "go",
                    "build",
                    "-o",
                    str(bindir / "pkg-config"),
                    "github.com/influxdata/pkg-config",
                ],
            ),
        ]
        for i, (step, argv) in enumerate(steps, 1):
            progress(f"influxdb: [{i}/5] {step}")
            _run(argv, cwd=src, env=env, log=log, step=step)
        env["PKG_CONFIG"] = str(bindir / "pkg-config")
        progress("influxdb: [5/5] compile libflux (Rust) and influxd (Go); the long step")
        tmp = target.with_suffix(".tmp")
        _run(
            [
                "go",
                "build",
                "-o",
                str(tmp),
                f"-ldflags=-s -w -X main.version=v{version} -X main.commit=edgeloop-build",
                f"{_MODULE}/cmd/influxd",
            ],
            cwd=src,
            env=env,
            log=log,
            step="build influxd",
        )
        tmp.rename(target)
        progress(f"influxdb: built {target} in {time.monotonic() - t0:.0f}s")
    return target
