"""``configure`` merge semantics and the environment fallbacks."""

from __future__ import annotations

import pytest

import asyncfeeds
from asyncfeeds import config

ENV = (
    "ASYNCFEEDS_REDIS_URL",
    "ASYNCFEEDS_CASSANDRA_HOSTS",
    "ASYNCFEEDS_CASSANDRA_PORT",
    "ASYNCFEEDS_CASSANDRA_KEYSPACE",
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
