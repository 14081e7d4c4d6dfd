"""The bridge over TLS, against a real Mosquitto with a TLS listener of its own.

A plant's broker speaks TLS. This starts a second Mosquitto (the devstack's has a
plain listener only) with a certificate made here by ``openssl`` for 127.0.0.1,
and checks that the bridge verifies it, moves every message into Kafka through
its batched read path, and refuses a broker it cannot verify.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud_stream.bridge.mqtt_client import BufferedSocket
from pipeline.schemas import decode, encode
from tests.integration.helpers import drain, free_port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(folder: Path) -> None:
    """A CA, and a server certificate it signed for 127.0.0.1 (as an IP SAN)."""
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=edgeloop test CA",
        cwd=folder,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
        "-out", "server.csr", "-subj", "/CN=127.0.0.1",
        cwd=folder,
    )  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "san.ext",
        cwd=folder,
    )  # fmt: skip


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A Mosquitto with only a TLS listener: (port, CA file)."""
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificates (apt-get install openssl)")
    _certificates(tmp_path)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        f"cafile {tmp_path / 'ca.crt'}\n"
        f"certfile {tmp_path / 'server.crt'}\n"
        f"keyfile {tmp_path / 'server.key'}\n"
        "allow_anonymous true\n"
        f"user {getpass.getuser()}\n"
        "persistence false\n"
        "max_inflight_messages 0\n"
        "log_dest stdout\n"
    )
    log = (tmp_path / "mosquitto.log").open("wb")
    proc = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, (tmp_path / "mosquitto.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "TLS broker did not start"
                time.sleep(0.1)
        yield port, tmp_path / "ca.crt"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _tls_publisher(port: int, ca_file: Path) -> Any:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(ca_file))
    client.max_inflight_messages_set(500)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def test_bridge_over_tls_moves_every_message_through_the_batched_reads(
    devstack, bridge_settings, bridge_factory, result_factory, unique, tls_broker
):
    port, ca_file = tls_broker
    settings = dict(bridge_settings)
    settings["mqtt"] = {**settings["mqtt"], "port": port, "tls": {"ca_file": str(ca_file)}}
    bridge = bridge_factory(settings)
    assert bridge.health()[0], bridge.health()[1]
    sock = bridge._client._sock
    assert isinstance(sock, BufferedSocket)
    assert sock._tls
    msgs = [
        result_factory(site=unique, device=f"dev-{d:02d}", seq=i)
        for i in range(300)
        for d in range(5)
    ]
    pub = _tls_publisher(port, ca_file)
    try:
        infos = [
            pub.publish(f"edgeloop/v1/{m.site}/{m.device}/result", encode(m), qos=1) for m in msgs
        ]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        pub.disconnect()
        pub.loop_stop()
    records = drain(devstack.kafka_bootstrap, [settings["topic_map"]["result"]], len(msgs))
    assert sorted(decode(r.value).id for r in records) == sorted(m.id for m in msgs)
    by_device: dict[str, list[int]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        msg = decode(r.value)
        by_device.setdefault(msg.device, []).append(msg.seq)
    assert all(seqs == sorted(seqs) for seqs in by_device.values())


# paho drops the TLS socket of a failed handshake without closing it; Python closes
# it when it is collected, with a ResourceWarning (not a leak, but pytest reports it).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_bridge_refuses_a_broker_it_cannot_verify_and_says_why(
    bridge_settings, bridge_factory, tls_broker, tmp_path, caplog
):
    port, _ca_file = tls_broker
    other = tmp_path / "other"
    other.mkdir()
    _certificates(other)  # a CA that did not sign the broker's certificate
    settings = dict(bridge_settings)
    settings["mqtt"] = {
        **settings["mqtt"],
        "port": port,
        "tls": {"ca_file": str(other / "ca.crt")},
    }
    from cloud_stream.bridge.config import BridgeConfig
    from cloud_stream.bridge.service import Bridge

    bridge = Bridge(BridgeConfig.model_validate(settings))
    try:
        bridge.start(wait_s=3)
        ok, details = bridge.health()
        assert not ok
        assert details["mqtt_connected"] is False
        assert details["mqtt_subscribed"] is False
        assert "CERTIFICATE_VERIFY_FAILED" in details["mqtt_error"], details
    finally:
        bridge.stop(timeout=2)
    assert any("certificate verify failed" in r.getMessage() for r in caplog.records)
