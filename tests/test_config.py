"""``configure`` merge semantics and the environment fallbacks."""

from __future__ import annotations

import warnings

import pytest

import asyncfeeds
from asyncfeeds import config
from asyncfeeds.cassandra_settings import ConsistencyWarning

ENV = (
    "ASYNCFEEDS_REDIS_URL",
    *(f"ASYNCFEEDS_CASSANDRA_{name.upper()}" for name in config.cassandra_settings.OPTIONS),
)


@pytest.fixture(autouse=True)
def clean_settings(monkeypatch: pytest.MonkeyPatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    config.reset()
    yield
    config.reset()


def test_later_configure_replaces_named_redis_servers_and_keeps_others():
    asyncfeeds.configure(redis={"default": "redis://h1:1/0", "cache": "redis://h2:2/0"})
    asyncfeeds.configure(redis={"default": "redis+cluster://h3:3"})
    assert config.redis_url("default") == "redis+cluster://h3:3"
    assert config.redis_url("cache") == "redis://h2:2/0"


def test_configure_of_one_kind_keeps_the_other():
    asyncfeeds.configure(redis={"default": "redis://h1:1/0"})
    asyncfeeds.configure(cassandra={"default": {"hosts": ["c1"], "keyspace": "ks"}})
    asyncfeeds.configure(redis={"other": "redis://h2:2/0"})
    assert config.redis_url("default") == "redis://h1:1/0"
    assert config.cassandra_options("default")["keyspace"] == "ks"


def test_later_configure_replaces_a_cassandra_cluster_as_a_whole():
    asyncfeeds.configure(
        cassandra={
            "default": {"hosts": ["c1", "c2"], "port": 9142, "keyspace": "one"},
            "analytics": {"hosts": ["a1"], "keyspace": "stats"},
        }
    )
    asyncfeeds.configure(cassandra={"default": {"keyspace": "two"}})
    default = config.cassandra_options("default")
    assert default["keyspace"] == "two"
    assert default["hosts"] == ["127.0.0.1"]  # replaced, not merged with the first call
    assert default["port"] == 9042
    assert config.cassandra_options("analytics")["hosts"] == ["a1"]
    assert config.cassandra_options("analytics")["keyspace"] == "stats"


def test_unconfigured_names_use_documented_defaults():
    assert config.redis_url("default") == "redis://127.0.0.1:6379/0"
    options = config.cassandra_options("default")
    assert options["hosts"] == ["127.0.0.1"]
    assert options["port"] == 9042
    assert options["keyspace"] == "asyncfeeds"


def test_unconfigured_names_fall_back_to_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ASYNCFEEDS_REDIS_URL", "redis://envhost:6390/3")
    monkeypatch.setenv("ASYNCFEEDS_CASSANDRA_HOSTS", "n1, n2,n3")
    monkeypatch.setenv("ASYNCFEEDS_CASSANDRA_PORT", "19042")
    monkeypatch.setenv("ASYNCFEEDS_CASSANDRA_KEYSPACE", "envks")
    asyncfeeds.configure(redis={"named": "redis://named:1/0"})
    assert config.redis_url("default") == "redis://envhost:6390/3"
    assert config.redis_url("named") == "redis://named:1/0"
    options = config.cassandra_options("default")
    assert options["hosts"] == ["n1", "n2", "n3"]
    assert options["port"] == 19042
    assert options["keyspace"] == "envks"


def test_configured_names_win_over_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ASYNCFEEDS_REDIS_URL", "redis://envhost:6390/3")
    monkeypatch.setenv("ASYNCFEEDS_CASSANDRA_KEYSPACE", "envks")
    asyncfeeds.configure(
        redis={"default": "redis://mine:1/0"}, cassandra={"default": {"keyspace": "mine"}}
    )
    assert config.redis_url("default") == "redis://mine:1/0"
    assert config.cassandra_options("default")["keyspace"] == "mine"


@pytest.mark.parametrize(
    "settings",
    [
        {"redis": {"default": "127.0.0.1:6379"}},
        {"redis": {"default": 6379}},
        {"cassandra": {"default": ["127.0.0.1"]}},
        {"cassandra": {"default": {"hosts": ["h"], "bogus_option": 1}}},
        {"redis": {"default": "redis://new:1/0", "other": "no-scheme"}},
        {"redis": {"default": "redis://new:1/0"}, "cassandra": {"default": {"bogus": 1}}},
    ],
)
def test_bad_settings_are_rejected_and_change_nothing(settings):
    asyncfeeds.configure(redis={"default": "redis://kept:1/0"},
                         cassandra={"default": {"keyspace": "kept"}})
    with pytest.raises((TypeError, ValueError)):
        asyncfeeds.configure(**settings)
    assert config.redis_url("default") == "redis://kept:1/0"
    assert config.cassandra_options("default")["keyspace"] == "kept"


async def test_aclose_is_safe_to_call_twice():
    asyncfeeds.configure(redis={"default": "redis://127.0.0.1:6390/0"})
    await asyncfeeds.aclose()
    await asyncfeeds.aclose()


# ------------------------------------------------------------------------- Redis options


def test_a_redis_setting_may_be_a_url_with_options():
    asyncfeeds.configure(redis={"tls": {"url": "rediss://h:1/0", "ssl_ca_certs": "/ca.pem",
                                        "password": "pw"}})
    assert config.redis_url("tls") == "rediss://h:1/0"
    assert config.redis_options("tls") == {"ssl_ca_certs": "/ca.pem", "password": "pw"}
    assert config.redis_options("unknown") == {}


# ------------------------------------------------------------------------- Cassandra options

SECURE_ENV = {
    "ASYNCFEEDS_CASSANDRA_USERNAME": "app",
    "ASYNCFEEDS_CASSANDRA_PASSWORD": "pw",
    "ASYNCFEEDS_CASSANDRA_CONSISTENCY": "local_one",
    "ASYNCFEEDS_CASSANDRA_SSL_VERIFY": "off",
    "ASYNCFEEDS_CASSANDRA_REQUEST_TIMEOUT": "3.5",
}


def test_every_cassandra_option_has_an_environment_variable(monkeypatch, tmp_path):
    for name, value in SECURE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ASYNCFEEDS_CASSANDRA_SSL", "yes")
    options = config.cassandra_options("default")
    assert options["username"] == "app" and options["password"] == "pw"
    assert options["consistency"] == "LOCAL_ONE"
    assert options["ssl"] is True and options["ssl_verify"] == "none"
    assert options["request_timeout"] == 3.5
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    monkeypatch.setenv("ASYNCFEEDS_CASSANDRA_SSL_CA_CERTS", str(ca))
    monkeypatch.delenv("ASYNCFEEDS_CASSANDRA_SSL_VERIFY")
    options = config.cassandra_options("default")
    assert options["ssl_verify"] == "cert"  # a CA given: the server's certificate is checked


def test_a_bad_environment_variable_is_named(monkeypatch):
    monkeypatch.setenv("ASYNCFEEDS_CASSANDRA_PORT", "ninety")
    named = r"ASYNCFEEDS_CASSANDRA_\* variables\) has an invalid port 'ninety'"
    with pytest.raises(ValueError, match=named):
        config.cassandra_options("default")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"consistency": "ANY"}, "cannot both read and write"),
        ({"consistency": "SERIAL"}, "cannot both read and write"),
        ({"username": "app"}, "both username and password"),
        ({"ssl_ca_certs": "/nowhere/ca.pem"}, "not a readable file"),
        ({"ssl": True}, "needs ssl_ca_certs"),
        ({"ssl_verify": True}, "ssl_verify needs TLS"),
        ({"request_timeout": 0}, "request_timeout must be a number of seconds"),
        ({"port": "9042x"}, "invalid port"),
        ({"hosts": []}, "list of host names"),
    ],
)
def test_cassandra_options_that_cannot_work_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        asyncfeeds.configure(cassandra={"c": options})
    assert "c" not in config._cassandra


def test_a_client_certificate_needs_its_key(tmp_path):
    cert = tmp_path / "client.pem"
    cert.write_text("x")
    with pytest.raises(ValueError, match="both ssl_certfile and ssl_keyfile"):
        asyncfeeds.configure(cassandra={"c": {"ssl_certfile": str(cert), "ssl_verify": False}})


def rf(n: int) -> dict:
    return {"class": "SimpleStrategy", "replication_factor": n}


@pytest.mark.parametrize(
    ("consistency", "replication", "warned"),
    [
        ("ONE", rf(1), []),
        ("LOCAL_QUORUM", rf(3), []),
        ("QUORUM", {"class": "NetworkTopologyStrategy", "dc1": 3, "dc2": 3}, []),
        ("ONE", rf(2), ["lightweight transactions"]),
        ("QUORUM", rf(2), ["needs every replica", "lightweight transactions"]),
        ("ALL", rf(3), ["needs every replica"]),
        ("THREE", rf(2), ["every request fails"]),
        ("LOCAL_QUORUM", {"class": "NetworkTopologyStrategy", "dc1": 3, "dc2": 2},
         ["needs every replica", "lightweight transactions"]),
    ],
)
def test_configure_warns_about_consistency_that_fails_with_one_node_down(
    consistency, replication, warned
):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncfeeds.configure(cassandra={"c": {"consistency": consistency,
                                              "replication": replication}})
    messages = [str(w.message) for w in caught if w.category is ConsistencyWarning]
    assert len(messages) == len(warned)
    for message, expected in zip(messages, warned, strict=True):
        assert expected in message and "'c'" in message
    assert config.cassandra_options("c")["consistency"] == consistency  # configured anyway


def test_names_to_ping_are_the_configured_ones_and_the_environment_default(monkeypatch):
    asyncfeeds.configure(redis={"cache": "redis://h:1/0"}, cassandra={"main": {}})
    assert config.configured_names("redis") == ["cache"]
    assert config.configured_names("cassandra") == ["main"]
    monkeypatch.setenv("ASYNCFEEDS_REDIS_URL", "redis://h:2/0")
    monkeypatch.setenv("ASYNCFEEDS_CASSANDRA_HOSTS", "c1")
    assert config.configured_names("redis") == ["cache", "default"]
    assert config.configured_names("cassandra") == ["main", "default"]
