"""InfluxDB 2 OSS: built from source (or an existing binary/server), onboarded over HTTP."""

from __future__ import annotations

__all__ = ["InfluxCredentials", "InfluxService", "load_credentials"]

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.devstack.influx_build import build_influxd
from pipeline.devstack.probes import http_json
from pipeline.devstack.service import Service
from pipeline.errors import DevstackError


@dataclass(frozen=True)
class InfluxCredentials:
    """What clients need to talk to the devstack's InfluxDB.

    ``operator_token`` can do everything (tests create buckets with it);
    ``writer_token`` and ``reader_token`` are scoped to the org's buckets.
    """

    url: str
    org: str
    org_id: str
    bucket: str
    bucket_id: str
    operator_token: str
    writer_token: str
    reader_token: str


def load_credentials(path: Path) -> InfluxCredentials:
    """Read a credentials file written by ``devstack up``."""
    try:
        data = json.loads(path.read_text())
        return InfluxCredentials(**data)
    except (OSError, ValueError, TypeError) as exc:
        raise DevstackError(
            f"cannot read InfluxDB credentials from {path}: {exc}",
            where="influxdb",
            hint="run `edgeloop devstack up` first",
        ) from exc


class InfluxService(Service):
    """Local influxd, or a configured existing server."""

    name = "influxdb"

    @property
    def port(self) -> int:
        return self.config.influxdb.port

    @property
    def url(self) -> str:
        """Base URL of the server."""
        ext = self._external_url()
        return ext or f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return self.url

    @property
    def credentials_file(self) -> Path:
        """Where the onboarding result (tokens) is kept, mode 0600."""
        return self.state_dir / "credentials.json"

    def _external_url(self) -> str | None:
        url = self.config.influxdb.url or os.environ.get("EDGELOOP_INFLUX_URL")
        return url.rstrip("/") if url else None

    def external(self) -> bool:
        return self._external_url() is not None

    def binary(self) -> Path:
        """The influxd to run: configured, from $EDGELOOP_INFLUXD, or built and cached."""
        configured = self.config.influxdb.binary or os.environ.get("EDGELOOP_INFLUXD")
        if configured:
            path = Path(configured).expanduser()
            resolved = path if path.exists() else Path(shutil.which(configured) or path)
            if not resolved.exists():
                raise DevstackError(
                    f"influxd binary {configured} does not exist",
                    where=self.name,
                    hint="fix EDGELOOP_INFLUXD / devstack.influxdb.binary, or unset it to build",
                )
            return resolved
        return build_influxd(self.cache_dir, self.config.influxdb.version, self.progress)

    def prepare(self) -> None:
        self.binary()

    def argv(self) -> list[str]:
        return [
            str(self.binary()),
            f"--bolt-path={self.data_dir / 'influxd.bolt'}",
            f"--engine-path={self.data_dir / 'engine'}",
            f"--sqlite-path={self.data_dir / 'influxd.sqlite'}",
            f"--http-bind-address={self.host}:{self.port}",
            "--reporting-disabled",
            "--ui-disabled",
            "--log-level=info",
            "--metrics-disabled=false",
        ]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        # influxd reads INFLUXD_* variables; never let a user's leak into the devstack.
        for key in [k for k in env if k.startswith("INFLUXD_")]:
            del env[key]
        env["INFLUXD_CONFIG_PATH"] = str(self.conf_dir)
        return env

    def probe(self) -> str | None:
        try:
            status, body = http_json(f"{self.url}/health", timeout=2)
        except OSError as exc:
            return str(exc)
        if status == 200 and isinstance(body, dict) and body.get("status") == "pass":
            return None
        return f"/health answered {status}: {body}"

    def version(self) -> str | None:
        try:
            status, body = http_json(f"{self.url}/health", timeout=2)
        except OSError:
            return None
        if status == 200 and isinstance(body, dict):
            v = body.get("version")
            return str(v) if v else None
        return None

    def extra_status(self) -> dict[str, Any]:
        cfg = self.config.influxdb
        return {"org": cfg.org, "bucket": cfg.bucket, "credentials": str(self.credentials_file)}

    # --- onboarding ---------------------------------------------------------------
    def after_start(self) -> None:
        if self.external():
            self._record_external()
            return
        status, body = http_json(f"{self.url}/api/v2/setup")
        if status != 200 or not isinstance(body, dict):
            raise DevstackError(f"/api/v2/setup answered {status}: {body}", where=self.name)
        if not body.get("allowed"):
            if self.credentials_file.exists():
                return
            raise DevstackError(
                "InfluxDB is already set up, but its credentials file is missing",
                where=self.name,
                hint=f"run `edgeloop devstack down --reset influxdb` to start over "
                f"(deletes {self.data_dir})",
            )
        self._onboard()

    def _onboard(self) -> None:
        cfg = self.config.influxdb
        operator = secrets.token_urlsafe(48)
        status, body = http_json(
            f"{self.url}/api/v2/setup",
            method="POST",
            body={
                "username": cfg.username,
                "password": secrets.token_urlsafe(24),
                "org": cfg.org,
                "bucket": cfg.bucket,
                "token": operator,
                "retentionPeriodSeconds": cfg.retention_s,
            },
        )
        if status != 201 or not isinstance(body, dict):
            raise DevstackError(f"onboarding failed ({status}): {body}", where=self.name)
        org_id, bucket_id = body["org"]["id"], body["bucket"]["id"]
        writer = self._token(operator, org_id, "edgeloop writer", ["write", "read"])
        reader = self._token(operator, org_id, "edgeloop reader", ["read"])
        creds = InfluxCredentials(
            url=self.url,
            org=cfg.org,
            org_id=org_id,
            bucket=cfg.bucket,
            bucket_id=bucket_id,
            operator_token=operator,
            writer_token=writer,
            reader_token=reader,
        )
        self._write_credentials(creds)
        self.progress(
            f"influxdb: onboarded org {cfg.org!r}, bucket {cfg.bucket!r}; "
            f"tokens in {self.credentials_file}"
        )

    def _token(self, operator: str, org_id: str, description: str, actions: list[str]) -> str:
        perms = [
            {"action": action, "resource": {"type": "buckets", "orgID": org_id}}
            for action in actions
        ]
        status, body = http_json(
            f"{self.url}/api/v2/authorizations",
            method="POST",
            token=operator,
            body={"orgID": org_id, "description": description, "permissions": perms},
        )
        if status != 201 or not isinstance(body, dict):
            raise DevstackError(
                f"creating token {description!r} failed ({status}): {body}", where=self.name
            )
        return str(body["token"])

    def _write_credentials(self, creds: InfluxCredentials) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.credentials_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(creds), f, indent=2)
        tmp.replace(self.credentials_file)

    def _record_external(self) -> None:
        cfg = self.config.influxdb
        token = (cfg.token.get_secret_value() if cfg.token else None) or os.environ.get(
            "EDGELOOP_INFLUX_TOKEN"
        )
        if not token:
            raise DevstackError(
                f"an InfluxDB URL is configured ({self.url}) but no token",
                where=self.name,
                hint="set EDGELOOP_INFLUX_TOKEN or devstack.influxdb.token",
            )
        status, body = http_json(f"{self.url}/api/v2/orgs?org={cfg.org}", token=token)
        orgs = body.get("orgs") if isinstance(body, dict) else None
        if status != 200 or not orgs:
            raise DevstackError(
                f"org {cfg.org!r} not found on {self.url} ({status})", where=self.name
            )
        org_id = orgs[0]["id"]
        status, body = http_json(f"{self.url}/api/v2/buckets?name={cfg.bucket}", token=token)
        buckets = body.get("buckets") if isinstance(body, dict) else None
        if status != 200 or not buckets:
            raise DevstackError(f"bucket {cfg.bucket!r} not found on {self.url}", where=self.name)
        self._write_credentials(
            InfluxCredentials(
                url=self.url,
                org=cfg.org,
                org_id=org_id,
                bucket=cfg.bucket,
                bucket_id=buckets[0]["id"],
                operator_token=token,
                writer_token=token,
                reader_token=token,
            )
        )

    def built_version(self) -> str | None:
        """``influxd version`` of the binary, without starting it."""
        try:
            out = subprocess.run(
                [str(self.binary()), "version"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout
        except (OSError, subprocess.TimeoutExpired, DevstackError):
            return None
        return out.strip() or None
