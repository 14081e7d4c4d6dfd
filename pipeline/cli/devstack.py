"""``edgeloop devstack up|down|status|logs|env``: the local Mosquitto, Kafka and InfluxDB."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from pipeline.config.devstack import DevstackConfig
from pipeline.config.loader import load_config
from pipeline.devstack.stack import SERVICE_NAMES, Devstack


def register(parser: argparse.ArgumentParser) -> None:
    """Add the subcommands."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="devstack YAML (default: built-in settings; see configs/devstack.example.yaml)",
    )
    sub = parser.add_subparsers(dest="action", required=True)

    up = sub.add_parser("up", help="start the services (installs or builds them the first time)")
    up.add_argument(
        "services",
        nargs="*",
        metavar="service",
        help=f"only these ({', '.join(SERVICE_NAMES)}); default all",
    )
    up.set_defaults(func=_up)

    prep = sub.add_parser(
        "prepare", help="install, download and build only (cached); start nothing"
    )
    prep.add_argument("services", nargs="*", metavar="service", help="only these")
    prep.set_defaults(func=_prepare)

    down = sub.add_parser("down", help="stop what `up` started (nothing else)")
    down.add_argument("services", nargs="*", metavar="service", help="only these")
    down.add_argument("--reset", action="store_true", help="also delete their data")
    down.set_defaults(func=_down)

    st = sub.add_parser("status", help="health of each service")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=_status)

    logs = sub.add_parser("logs", help="print the end of the service logs")
    logs.add_argument("services", nargs="*", metavar="service", help="only these")
    logs.add_argument("-n", "--lines", type=int, default=40, help="lines per file (40)")
    logs.set_defaults(func=_logs)

    env = sub.add_parser("env", help="print shell exports for clients (addresses, tokens)")
    env.set_defaults(func=_env)


def _stack(args: argparse.Namespace) -> Devstack:
    config = (
        load_config(args.config, DevstackConfig, env_prefix="EDGELOOP_DEVSTACK__")
        if args.config
        else DevstackConfig()
    )
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    return Devstack(config, progress)


def _up(args: argparse.Namespace) -> int:
    stack = _stack(args)
    stack.up(args.services or None)
    return _print_status(stack, as_json=False)


def _prepare(args: argparse.Namespace) -> int:
    stack = _stack(args)
    t0 = time.monotonic()
    stack.prepare(args.services or None)
    print(f"prepared in {time.monotonic() - t0:.1f}s")
    return 0


def _down(args: argparse.Namespace) -> int:
    stack = _stack(args)
    stopped = stack.down(args.services or None, reset=args.reset)
    print(f"stopped: {', '.join(stopped) or 'nothing (none of ours was running)'}")
    return 0


def _print_status(stack: Devstack, *, as_json: bool) -> int:
    report = stack.status_json()
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{'service':<10} {'health':<8} {'pid':>7}  {'version':<8} address")
        for s in report["services"]:
            health = "ok" if s["healthy"] else "DOWN"
            pid = s["pid"] if s["pid"] else "-"
            print(
                f"{s['name']:<10} {health:<8} {pid!s:>7}  {s['version'] or '-':<8} "
                f"{s['address']}" + ("" if s["healthy"] else f"  ({s['detail']})")
            )
        print(f"run dir: {report['run_dir']}")
    return 0 if report["healthy"] else 1


def _status(args: argparse.Namespace) -> int:
    return _print_status(_stack(args), as_json=args.json)


def _logs(args: argparse.Namespace) -> int:
    stack = _stack(args)
    for name in args.services or list(SERVICE_NAMES):
        print(stack.services[name].log_tail(args.lines))
    return 0


def _env(args: argparse.Namespace) -> int:
    stack = _stack(args)
    host, port = stack.mqtt_address
    values = {
        "EDGELOOP_MQTT_HOST": host,
        "EDGELOOP_MQTT_PORT": str(port),
        "EDGELOOP_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
    }
    if stack.influxdb.credentials_file.exists():
        creds = stack.influx_credentials()
        values.update(
            INFLUX_URL=creds.url,
            INFLUX_ORG=creds.org,
            INFLUX_BUCKET=creds.bucket,
            INFLUX_TOKEN=creds.reader_token,
            EDGELOOP_INFLUX_WRITE_TOKEN=creds.writer_token,
        )
    for key, value in values.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0
