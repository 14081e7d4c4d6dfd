"""Publisher pieces that need no broker: backoff, status, client set-up, argument checks."""

from __future__ import annotations

import pytest

from edge_node.outbox import Outbox, Priority
from edge_node.outbox.messages import OutboxMessage
from edge_node.publish import Publisher, PublishError, basic_status
from edge_node.publish.client import backoff_delay, connect_properties, make_client, user_properties
from pipeline.config.base import MqttConfig, TlsConfig
from pipeline.schemas import StatusV1
from pipeline.schemas.codec import decode, encode
from pipeline.topics import Stream


def test_backoff_grows_to_the_maximum_with_jitter():
    cfg = MqttConfig(reconnect_min_s=0.5, reconnect_max_s=8)
    for attempt, step in [(0, 0.5), (1, 1.0), (3, 4.0), (4, 8.0), (50, 8.0)]:
        delays = [backoff_delay(cfg, attempt) for _ in range(50)]
        assert all(step / 2 <= d <= step for d in delays), (attempt, min(delays), max(delays))


def test_basic_status_is_a_valid_message():
    make = basic_status("plant-a", "cam-01")
    msg = make("offline", seq=7, reason="connection lost")
    assert isinstance(msg, StatusV1)
    back = decode(encode(msg))
    assert back == msg
    assert back.state == "offline"
    assert back.seq == 7
    assert make("online", seq=8, reason=None).id != msg.id


def test_connect_properties_keep_the_session():
    props = connect_properties(MqttConfig(session_expiry_s=3600, receive_maximum=500))
    assert props.SessionExpiryInterval == 3600
    assert props.ReceiveMaximum == 500


def test_missing_tls_files_are_a_clear_error(tmp_path):
    cfg = MqttConfig(tls=TlsConfig(ca_file=str(tmp_path / "missing.pem")))
    with pytest.raises(PublishError, match="TLS") as info:
        make_client(cfg, "cam-01")
    assert info.value.hint


def test_credentials_are_set():
    client = make_client(MqttConfig(username="edge", password="s3cret"), "cam-01")
    assert client.username == "edge"
    assert client.password == "s3cret"


def test_frame_metadata_becomesuser_properties():
    row = OutboxMessage(1, 5, Stream.FRAME, Priority.FRAME, b"jpeg", {"a": "1", "b": "2"}, 0)
    props = user_properties(row)
    assert props is not None
    assert props.UserProperty == [("a", "1"), ("b", "2")]
    assert user_properties(OutboxMessage(1, 5, Stream.RESULT, Priority.RESULT, b"", {}, 0)) is None


def test_argument_checks(tmp_path):
    with Outbox(tmp_path / "o.db", max_bytes=1000, device="cam-01") as box:
        with pytest.raises(PublishError, match="belongs to device"):
            Publisher(box, MqttConfig(), site="plant-a", device="cam-02")
        with pytest.raises(PublishError, match="max_inflight"):
            Publisher(box, MqttConfig(), site="plant-a", device="cam-01", max_inflight=0)
        pub = Publisher(box, MqttConfig(), site="plant-a", device="cam-01")
        pub.stop()  # never started: nothing to do
        assert pub.stats.published == 0
