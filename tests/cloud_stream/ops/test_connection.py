"""Connection options: the --config file's influx: section, flags, environment, errors."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest

from cloud_stream.ops.connection import (
    TOKEN_ENV,
    _api_error,
    add_connection_options,
    influx_config_from_args,
    load_influx_section,
)
from pipeline.config.base import InfluxConfig
from pipeline.errors import ConfigError, EdgeloopError


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_connection_options(parser)
    return parser.parse_args(argv)


@pytest.fixture(autouse=True)
def _no_token_env(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)


def test_section_is_read_and_the_rest_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("OPS_TOKEN", "s3cret")
    monkeypatch.delenv("OPS_MISSING", raising=False)
    path = tmp_path / "cloud.yaml"
    path.write_text(
        "kafka:\n  sasl_password: ${OPS_MISSING}\nslowpath: {batch: 8}\n"
        "influx:\n  url: https://influx.example.com/\n  org: acme\n  bucket: plant\n"
        "  token: ${OPS_TOKEN}\n  timeout_s: 3\n"
    )
    config = load_influx_section(path)
    assert config.url == "https://influx.example.com"
    assert (config.org, config.bucket, config.timeout_s) == ("acme", "plant", 3)
    assert config.token is not None
    assert config.token.get_secret_value() == "s3cret"


def test_missing_section_means_defaults(tmp_path):
    path = tmp_path / "cloud.yaml"
    path.write_text("kafka: {}\n")
    assert load_influx_section(path) == InfluxConfig()
    path.write_text("")
    assert load_influx_section(path) == InfluxConfig()


def test_invalid_section_lists_every_problem_with_its_path(tmp_path):
    path = tmp_path / "cloud.yaml"
    path.write_text("influx:\n  url: influx:8086\n  bukket: x\n  timeout_s: -1\n")
    with pytest.raises(ConfigError) as err:
        load_influx_section(path)
    text = str(err.value)
    assert str(path) in text
    assert "influx.url: Value error, must start with http:// or https://" in text
    assert "influx.bukket: unknown setting; allowed here: bucket, org, timeout_s, token, url" in (
        text
    )
    assert "influx.timeout_s" in text
    assert "3 problems" in text


def test_missing_environment_variable_in_the_section(tmp_path, monkeypatch):
    monkeypatch.delenv("OPS_NOT_SET", raising=False)
    path = tmp_path / "cloud.yaml"
    path.write_text("influx:\n  token: ${OPS_NOT_SET}\n")
    with pytest.raises(ConfigError, match=r"influx\.token: environment variable OPS_NOT_SET"):
        load_influx_section(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("influx: [1, 2\n", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("influx: 3\n", "influx"),
    ],
)
def test_bad_files(tmp_path, text, message):
    path = tmp_path / "cloud.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_influx_section(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_influx_section(tmp_path / "nope.yaml")


def test_defaults_without_anything():
    config = influx_config_from_args(_args())
    assert config == InfluxConfig()


def test_flags_override_the_file_and_the_env_overrides_the_file_token(tmp_path, monkeypatch):
    path = tmp_path / "cloud.yaml"
    path.write_text("influx:\n  url: http://a:8086\n  org: o1\n  bucket: b1\n  token: t-file\n")
    config = influx_config_from_args(_args("--config", str(path), "--bucket", "b2"))
    assert (config.url, config.org, config.bucket) == ("http://a:8086", "o1", "b2")
    assert config.token is not None
    assert config.token.get_secret_value() == "t-file"
    monkeypatch.setenv(TOKEN_ENV, "t-env")
    config = influx_config_from_args(_args("--config", str(path)))
    assert config.token is not None
    assert config.token.get_secret_value() == "t-env"
    config = influx_config_from_args(_args("--config", str(path), "--token", "t-flag"))
    assert config.token is not None
    assert config.token.get_secret_value() == "t-flag"
    config = influx_config_from_args(_args("--url", "http://b:1/", "--timeout", "2.5"))
    assert (config.url, config.timeout_s) == ("http://b:1", 2.5)


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--url", "localhost:8086"], "--url"),
        (["--timeout", "0"], "--timeout"),
        (["--org", ""], "--org"),
    ],
)
def test_invalid_flag_names_the_flag(argv, flag):
    with pytest.raises(EdgeloopError) as err:
        influx_config_from_args(_args(*argv))
    assert err.value.where == flag
    assert flag in (err.value.hint or "")


@pytest.mark.parametrize(
    ("status", "what", "fix"),
    [
        (401, "refused the token", "--token"),
        (403, "refused the token", "--token"),
        (404, 'not found: could not find bucket "x"', "--bucket"),
        (500, "query failed (500)", "InfluxDB 2"),
    ],
)
def test_api_errors_say_what_and_how_to_fix(status, what, fix):
    exc = SimpleNamespace(status=status, message='could not find bucket "x"')
    err = _api_error(exc, InfluxConfig(), "InfluxDB at http://127.0.0.1:8086")
    assert what in err.message
    assert fix in (err.hint or "")
    assert err.where == "InfluxDB at http://127.0.0.1:8086"
