"""Settings from HEALTHSCORE_* environment variables."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from worker.errors import ConfigError
from worker.settings import FILE_SETTINGS, PREFIX, Settings, documented_settings, env_name

FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def typed(kind: type) -> list[str]:
    # A bool field must not count as an int one.
    return [n for n, f in FIELDS.items() if type(f.default) is kind]


# --------------------------------------------------------------------------- defaults


def test_empty_environment_gives_the_defaults() -> None:
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("kafka_bootstrap", "127.0.0.1:9092"),
        ("redis_url", "redis://127.0.0.1:6379/0"),
        ("group_id", "healthscore"),
        ("topic_login", "events.login"),
        ("topic_feature_use", "events.feature_use"),
        ("topic_ticket", "events.ticket"),
        ("topic_survey", "events.survey"),
        ("topic_accounts", "accounts"),
        ("topic_alerts", "health.alerts"),
        ("topic_deadletter", "health.deadletter"),
        ("topic_partitions", 6),
        ("topic_replication", 1),
        ("create_topics", True),
        ("model_path", ""),
        ("max_message_bytes", 65536),
        ("max_future_skew_seconds", 300.0),
        ("batch_max_records", 30000),
        ("batch_timeout_ms", 50),
        ("session_timeout_ms", 10000),
        ("max_poll_interval_ms", 300000),
        ("broker_timeout_ms", 40000),
        ("retry_backoff_max_seconds", 30.0),
        ("metrics_port", 9464),
        ("log_level", "INFO"),
    ],
)
def test_defaults(name: str, default: Any) -> None:
    value = getattr(Settings(), name)
    assert value == default
    assert type(value) is type(default)


@pytest.mark.parametrize("name", list(FIELDS))
def test_every_default_has_its_annotated_type(name: str) -> None:
    # The parser picks int/float/bool parsing by the default's type, so they must agree.
    assert type(FIELDS[name].default).__name__ == FIELDS[name].type


def test_defaults_validate() -> None:
    Settings().validate()


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("topic_partitions", "12", 12),
        ("topic_partitions", " 3 ", 3),  # int() tolerates surrounding blanks
        ("max_message_bytes", "1048576", 1048576),
        ("batch_max_records", "+5", 5),
        ("metrics_port", "0", 0),  # 0 turns the endpoint off
        ("max_future_skew_seconds", "0.5", 0.5),
        ("max_future_skew_seconds", "60", 60.0),
        ("retry_backoff_max_seconds", "1e1", 10.0),
        ("kafka_bootstrap", "k1:9092,k2:9092", "k1:9092,k2:9092"),
        ("log_level", "DEBUG", "DEBUG"),
        ("model_path", "", ""),
    ],
)
def test_values_are_parsed_to_the_field_type(name: str, raw: str, value: Any) -> None:
    settings = Settings.from_env({env_name(name): raw})
    assert getattr(settings, name) == value
    assert type(getattr(settings, name)) is type(value)


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "True", "yes", "YES", "on", "On"])
def test_true_words(raw: str) -> None:
    assert Settings.from_env({"HEALTHSCORE_CREATE_TOPICS": raw}).create_topics is True


@pytest.mark.parametrize("raw", ["0", "false", "FALSE", "False", "no", "NO", "off", "Off"])
def test_false_words(raw: str) -> None:
    assert Settings.from_env({"HEALTHSCORE_CREATE_TOPICS": raw}).create_topics is False


ENUMERATED = ("log_level", "log_format", "kafka_security_protocol", "kafka_sasl_mechanism")
# Settings another must come with: a certificate with its key, a CA file with TLS.
COMPANIONS = {"kafka_ssl_certfile": "kafka_ssl_keyfile", "kafka_ssl_keyfile": "kafka_ssl_certfile"}


@pytest.mark.parametrize("name", [n for n in typed(str) if n not in ENUMERATED])
def test_string_settings_are_taken_verbatim(name: str, tmp_path: Path) -> None:
    files = ("model_path", "api_token_file", *FILE_SETTINGS)  # checked to exist
    raw = str(tmp_path / "model.yaml") if name in files else " some value "
    if name == "redis_url":  # must be a Redis URL (tested below), taken as it is
        raw = "redis://some value:6379/3 "
    if name in files:
        Path(raw).write_text("x", "utf-8")
    env = {env_name(name): raw}
    if name in COMPANIONS:
        env[env_name(COMPANIONS[name])] = raw
    if name == "redis_ca_file":
        env[env_name("redis_url")] = "rediss://127.0.0.1:6380/0"
    assert getattr(Settings.from_env(env), name) == raw


@pytest.mark.parametrize("level", ["debug", "INFO", "Warning", "ERROR"])
def test_log_levels(level: str) -> None:
    assert Settings.from_env({"HEALTHSCORE_LOG_LEVEL": level}).log_level == level


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("HEALTHSCORE_LOG_LEVEL", "chatty"),
        ("HEALTHSCORE_METRICS_PORT", "70000"),
        ("HEALTHSCORE_METRICS_PORT", "-1"),
        ("HEALTHSCORE_MAX_FUTURE_SKEW_SECONDS", "nan"),
        ("HEALTHSCORE_MAX_FUTURE_SKEW_SECONDS", "-5"),
        ("HEALTHSCORE_RETRY_BACKOFF_MAX_SECONDS", "inf"),
        ("HEALTHSCORE_REDIS_URL", "127.0.0.1:6379"),  # redis-py's ValueError, a traceback
    ],
)
def test_out_of_range_values_are_refused_by_name(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: raw})


@pytest.mark.parametrize("name", list(FIELDS))
def test_empty_value_means_default(name: str) -> None:
    assert getattr(Settings.from_env({env_name(name): ""}), name) == FIELDS[name].default


def test_other_variables_are_ignored() -> None:
    env = {
        "TOPIC_PARTITIONS": "x",
        "healthscore_topic_partitions": "x",
        "HEALTHSCORE_NOPE": "x",
        "HEALTHSCORE_": "x",
        "PATH": "/bin",
    }
    assert Settings.from_env(env) == Settings()


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEALTHSCORE_GROUP_ID", "from-env")
    monkeypatch.setenv("HEALTHSCORE_TOPIC_PARTITIONS", "9")
    settings = Settings.from_env()
    assert (settings.group_id, settings.topic_partitions) == ("from-env", 9)


# --------------------------------------------------------------------------- bad values


@pytest.mark.parametrize("name", typed(int))
@pytest.mark.parametrize("raw", ["abc", "1.5", "1e3", "0x10", "ten", "--1"])
def test_bad_int_names_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{env_name(name)}={raw!r}: "):
        Settings.from_env({env_name(name): raw})


@pytest.mark.parametrize("name", typed(float))
@pytest.mark.parametrize("raw", ["abc", "1,5", "5s", "one"])
def test_bad_float_names_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{env_name(name)}={raw!r}: "):
        Settings.from_env({env_name(name): raw})


@pytest.mark.parametrize("raw", ["maybe", "2", "y", "n", "t", "enabled", "-1"])
def test_bad_bool_names_the_variable(raw: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"^HEALTHSCORE_CREATE_TOPICS={raw!r}: expected true or false"
    ):
        Settings.from_env({"HEALTHSCORE_CREATE_TOPICS": raw})


@pytest.mark.parametrize(
    "name",
    [
        "topic_partitions",
        "topic_replication",
        "max_message_bytes",
        "batch_max_records",
        "batch_timeout_ms",
        "session_timeout_ms",
        "max_poll_interval_ms",
        "broker_timeout_ms",
    ],
)
@pytest.mark.parametrize("raw", ["0", "-1"])
def test_counts_below_one_are_rejected(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{env_name(name)} must be at least 1"):
        Settings.from_env({env_name(name): raw})


def test_validate_on_a_replaced_settings() -> None:
    with pytest.raises(ConfigError, match="HEALTHSCORE_BATCH_MAX_RECORDS"):
        Settings().replace(batch_max_records=0).validate()


def test_missing_model_file_names_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"^HEALTHSCORE_MODEL_PATH: no file at .*nope\.yaml"):
        Settings.from_env({"HEALTHSCORE_MODEL_PATH": str(missing)})


def test_model_path_that_is_a_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HEALTHSCORE_MODEL_PATH"):
        Settings.from_env({"HEALTHSCORE_MODEL_PATH": str(tmp_path)})


def test_existing_model_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text("version: x\n", "utf-8")
    assert Settings.from_env({"HEALTHSCORE_MODEL_PATH": str(path)}).model_path == str(path)


def test_first_bad_variable_stops_parsing() -> None:
    with pytest.raises(ConfigError, match="HEALTHSCORE_TOPIC_PARTITIONS"):
        Settings.from_env({"HEALTHSCORE_TOPIC_PARTITIONS": "x", "HEALTHSCORE_METRICS_PORT": "80"})


# --------------------------------------------------------------------------- derived


def test_env_name() -> None:
    assert PREFIX == "HEALTHSCORE_"
    assert env_name("topic_login") == "HEALTHSCORE_TOPIC_LOGIN"


def test_event_topics_map_topic_to_type() -> None:
    assert Settings().event_topics == {
        "events.login": "login",
        "events.feature_use": "feature_use",
        "events.ticket": "ticket",
        "events.survey": "survey",
    }


def test_custom_topic_names_follow_through() -> None:
    settings = Settings.from_env(
        {"HEALTHSCORE_TOPIC_LOGIN": "prod.login", "HEALTHSCORE_TOPIC_ACCOUNTS": "prod.accounts"}
    )
    assert settings.event_topics["prod.login"] == "login"
    assert "events.login" not in settings.event_topics
    assert settings.input_topics == [
        "prod.login",
        "events.feature_use",
        "events.ticket",
        "events.survey",
        "prod.accounts",
        "overrides",
    ]


def test_outputs_are_not_inputs() -> None:
    settings = Settings()
    assert settings.topic_alerts not in settings.input_topics
    assert settings.topic_deadletter not in settings.input_topics


def test_settings_are_immutable_and_replace_copies() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.group_id = "x"  # type: ignore[misc]
    changed = settings.replace(group_id="other")
    assert (settings.group_id, changed.group_id) == ("healthscore", "other")


# --------------------------------------------------------------------------- documentation


def test_documented_settings_cover_every_field_in_order() -> None:
    documented = documented_settings()
    assert [name for name, _, _ in documented] == [env_name(n) for n in FIELDS]


@pytest.mark.parametrize(("env", "default", "help_text"), documented_settings())
def test_each_setting_is_documented(env: str, default: str, help_text: str) -> None:
    field = FIELDS[env.removeprefix(PREFIX).lower()]
    assert default == str(field.default)
    assert help_text == field.metadata["help"]
    assert help_text.strip()
    assert help_text.endswith(".")


def test_documented_defaults_parse_back_to_the_defaults() -> None:
    env = {name: default for name, default, _ in documented_settings()}
    assert Settings.from_env(env) == Settings()


def test_input_topics_must_be_copartitioned() -> None:
    from worker.runtime.topics import check_copartitioned

    check_copartitioned({"events.login": 6, "events.ticket": 6, "accounts": 6})
    with pytest.raises(ConfigError, match="same number of partitions"):
        check_copartitioned({"events.login": 6, "events.ticket": 4})


def test_durability_defaults_wait_for_nothing() -> None:
    settings = Settings()
    assert (
        settings.redis_wait_replicas,
        settings.redis_wait_aof,
        settings.redis_wait_timeout_seconds,
    ) == (0, False, 5.0)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("HEALTHSCORE_REDIS_WAIT_REPLICAS", "-1"),
        ("HEALTHSCORE_REDIS_WAIT_TIMEOUT_SECONDS", "0"),
        ("HEALTHSCORE_REDIS_WAIT_TIMEOUT_SECONDS", "inf"),
        ("HEALTHSCORE_REDIS_TIMEOUT_SECONDS", "0"),
    ],
)
def test_durability_settings_out_of_range_are_refused_by_name(name: str, raw: str) -> None:
    # A WAIT timeout of 0 would mean "forever" to Redis.
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: raw})


def test_the_api_token_comes_from_its_file_when_not_set(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret\n", "utf-8")
    from_file = Settings.from_env({"HEALTHSCORE_API_TOKEN_FILE": str(secret)})
    assert from_file.api_bearer_token() == "s3cret"
    both = Settings.from_env(
        {"HEALTHSCORE_API_TOKEN_FILE": str(secret), "HEALTHSCORE_API_TOKEN": "direct"}
    )
    assert both.api_bearer_token() == "direct"
    assert Settings.from_env({}).api_bearer_token() == ""


@pytest.mark.parametrize("port", ["0", "65536"])
def test_the_api_port_must_be_a_port(port: str) -> None:
    with pytest.raises(ConfigError, match="HEALTHSCORE_API_PORT"):
        Settings.from_env({"HEALTHSCORE_API_PORT": port})
