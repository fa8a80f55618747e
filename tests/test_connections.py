"""Connections as operations need them: seed lists, TLS and ACL users, hung servers, ping().

Servers that a test stops or pauses are its own (``private_servers``); the shared
test servers are only read from or written to under unique keys.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import CASSANDRA_KEYSPACE, CASSANDRA_PORT, REDIS_URL, make_activity
from private_servers import Certificates, RedisProcess, free_port, throwaway_ca

import asyncfeeds
from asyncfeeds import RedisFeed, StorageUnavailableError
from asyncfeeds.redis_urls import parse_redis_url
from asyncfeeds.storage.redis import get_server

GIVE_UP = 8.0  # seconds: "within seconds" for a dead or hung server
CLUSTER_PORTS = (7101, 7102, 7103)


@pytest.fixture(autouse=True)
async def clean_settings() -> Iterator[None]:
    asyncfeeds.config.reset()
    yield
    await asyncfeeds.aclose()
    asyncfeeds.config.reset()


def feed_class(server: str = "default") -> type[RedisFeed]:
    run = uuid.uuid4().hex[:10]
    return type("ConnFeed", (RedisFeed,), {
        "redis_server": server, "key_format": f"c{run}:{{user_id}}",
        "activity_key_prefix": f"c{run}:activity"})


async def roundtrip(server: str = "default") -> None:
    """Add, read back and clean up one activity through the named Redis."""
    feed = feed_class(server)
    await feed(1).add(make_activity(1))
    assert [a.object for a in await feed(1)[:]] == [1]
    await feed.flush()


# ------------------------------------------------------------------------- URLs


def test_a_cluster_url_lists_seeds_and_takes_tls_and_acl_options():
    target = parse_redis_url(
        "rediss+cluster://alice:s%40cret@h1:7001,h2,[::1]:7003/?ssl_ca_certs=/ca.pem"
        "&ssl_cert_reqs=required&socket_timeout=2.5"
    )
    assert target.cluster and target.tls
    assert target.seeds == (("h1", 7001), ("h2", 6379), ("::1", 7003))
    assert target.options == {"username": "alice", "password": "s@cret",
                              "ssl_ca_certs": "/ca.pem", "ssl_cert_reqs": "required",
                              "socket_timeout": 2.5}
    assert target.address == "h1:7001, h2:6379, ::1:7003"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("redis://h1:1,h2:2/0", "use redis\\+cluster://"),
        ("redis+cluster://h1:1/3", "database 0 only"),
        ("redis://h:1/0?ssl_ca_certs=/ca.pem", "need a TLS URL"),
        ("redis://h:1/0?sockettimeout=1", "unknown option 'sockettimeout'"),
        ("rediss://h:1/0?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
        ("redis://h:99999/0", "invalid port"),
        ("http://h:1", "unsupported Redis URL scheme"),
        ({"url": "rediss://h:1/0", "ssl_ca_file": "/ca.pem"}, "unknown Redis option"),
        ({"ssl_ca_certs": "/ca.pem"}, "needs a 'url'"),
    ],
)
def test_bad_redis_settings_are_refused_by_configure(setting, message):
    with pytest.raises((ValueError, TypeError), match=message):
        asyncfeeds.configure(redis={"default": setting})
    assert not asyncfeeds.config.redis_configured("default")


def test_a_password_never_shows_in_an_error_message():
    with pytest.raises(ValueError) as raised:
        asyncfeeds.configure(redis={"default": "redis://alice:hunter2@h:1/0?bogus=1"})
    assert "hunter2" not in str(raised.value)


# ------------------------------------------------------------------------- Redis Cluster seeds


def dead_seeds(count: int) -> list[str]:
    return [f"127.0.0.1:{free_port()}" for _ in range(count)]


@pytest.mark.redis_cluster
async def test_a_cluster_client_starts_while_every_seed_but_one_is_down():
    url = "redis+cluster://" + ",".join([*dead_seeds(2), f"127.0.0.1:{CLUSTER_PORTS[1]}"])
    asyncfeeds.configure(redis={"default": url})
    async with asyncio.timeout(GIVE_UP * 2):
        await roundtrip()


@pytest.mark.redis_cluster
async def test_pubsub_on_a_cluster_tries_the_seeds_in_turn():
    url = "redis+cluster://" + ",".join([*dead_seeds(2), f"127.0.0.1:{CLUSTER_PORTS[2]}"])
    asyncfeeds.configure(redis={"default": url})
    server = get_server("default")
    channel = f"conn-test-{uuid.uuid4().hex}"
    pubsub, own_client = server.pubsub()
    try:
        async with asyncio.timeout(GIVE_UP * 2):
            with server.errors():
                await pubsub.subscribe(channel)
                assert (await pubsub.get_message(timeout=GIVE_UP))["type"] == "subscribe"
            await server.call("PUBLISH", channel, b"hello")
            message = await pubsub.get_message(timeout=GIVE_UP)
        assert message is not None and message["data"] == b"hello"
    finally:
        await pubsub.aclose()
        assert own_client is not None
        await own_client.aclose()


async def test_a_cluster_whose_seeds_are_all_down_names_every_seed():
    seeds = dead_seeds(3)
    asyncfeeds.configure(redis={"default": "redis+cluster://" + ",".join(seeds)})
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError) as raised:
        await feed_class()(1).count()
    assert time.monotonic() - started < GIVE_UP
    assert all(seed in str(raised.value) for seed in seeds)


# ------------------------------------------------------------------------- TLS and ACL


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return throwaway_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def secured_redis(tmp_path_factory: pytest.TempPathFactory, certificates: Certificates):
    """A private Redis with a TLS port (client certificates required) and one ACL user."""
    tls_port = free_port()
    server = RedisProcess(
        tmp_path_factory.mktemp("redis-tls"),
        "--tls-port", str(tls_port),
        "--tls-cert-file", str(certificates.server_cert),
        "--tls-key-file", str(certificates.server_key),
        "--tls-ca-cert-file", str(certificates.ca),
        "--tls-auth-clients", "yes",
        "--user", "alice", "on", ">s3cret", "~*", "&*", "+@all",
        "--user", "default", "off",
    )
    server.tls_port = tls_port  # type: ignore[attr-defined]
    yield server
    server.stop()


def tls_query(certificates: Certificates) -> str:
    return (f"ssl_ca_certs={certificates.ca}&ssl_certfile={certificates.client_cert}"
            f"&ssl_keyfile={certificates.client_key}")


async def test_an_acl_user_in_a_plain_url(secured_redis):
    asyncfeeds.configure(redis={"default": f"redis://alice:s3cret@127.0.0.1:{secured_redis.port}/0"})
    await roundtrip()


async def test_rediss_with_a_ca_and_a_client_certificate_in_the_url(secured_redis, certificates):
    url = f"rediss://alice:s3cret@127.0.0.1:{secured_redis.tls_port}/0?{tls_query(certificates)}"
    asyncfeeds.configure(redis={"default": url})
    await roundtrip()


async def test_rediss_with_configure_options(secured_redis, certificates):
    asyncfeeds.configure(redis={"secured": {
        "url": f"rediss://127.0.0.1:{secured_redis.tls_port}/0",
        "username": "alice", "password": "s3cret",
        "ssl_ca_certs": str(certificates.ca),
        "ssl_certfile": str(certificates.client_cert),
        "ssl_keyfile": str(certificates.client_key),
    }})
    await roundtrip("secured")


@pytest.mark.parametrize(
    "problem", ["wrong password", "no client certificate", "unknown CA", "plain text to TLS"]
)
async def test_refused_logins_and_handshakes_are_storage_unavailable(
    secured_redis, certificates, tmp_path, problem
):
    port = secured_redis.tls_port
    query = tls_query(certificates)
    url = {
        "wrong password": f"rediss://alice:nope@127.0.0.1:{port}/0?{query}",
        "no client certificate": f"rediss://alice:s3cret@127.0.0.1:{port}/0"
                                 f"?ssl_ca_certs={certificates.ca}",
        "unknown CA": f"rediss://alice:s3cret@127.0.0.1:{port}/0?"
                      f"{query.replace(str(certificates.ca), str(throwaway_ca(tmp_path).ca))}",
        "plain text to TLS": f"redis://alice:s3cret@127.0.0.1:{port}/0",
    }[problem]
    asyncfeeds.configure(redis={"default": url})
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError, match=f"127.0.0.1:{port}"):
        await feed_class()(1).count()
    assert time.monotonic() - started < GIVE_UP
    # redis-py drops a refused connection without awaiting its close; give the loop a
    # moment to finish the TLS shutdown so the socket is not left to the garbage collector.
    await asyncio.sleep(0.2)


@pytest.mark.redis
async def test_an_out_of_range_database_is_a_clear_error():
    asyncfeeds.configure(redis={"default": REDIS_URL.rsplit("/", 1)[0] + "/99"})
    with pytest.raises(StorageUnavailableError, match=r"refused database 99.*out of range"):
        await feed_class()(1).count()


# ------------------------------------------------------------------------- hung Redis


@pytest.fixture
def paused_redis(tmp_path: Path):
    """A private Redis, used once, then SIGSTOPped by the test; continued and stopped after."""
    server = RedisProcess(tmp_path / "redis")
    yield server
    server.stop()


async def test_a_hung_redis_gives_storage_unavailable_within_seconds(paused_redis):
    asyncfeeds.configure(redis={"default": paused_redis.url})
    feed = feed_class()
    await feed(1).add(make_activity(1))  # a live connection in the pool, then the server hangs
    paused_redis.pause()
    asyncfeeds.configure(redis={"fresh": paused_redis.url})  # and a client that must connect
    fresh = feed_class("fresh")
    calls = [
        lambda: feed(1).add(make_activity(2)),
        lambda: feed(1)[:25],
        lambda: feed(1).count(),
        lambda: fresh(1).count(),
    ]

    async def timed(call) -> tuple[BaseException | None, float]:
        started = time.monotonic()
        try:
            await call()
        except Exception as exc:
            return exc, time.monotonic() - started
        return None, time.monotonic() - started

    for error, seconds in await asyncio.gather(*(timed(call) for call in calls)):
        assert isinstance(error, StorageUnavailableError), repr(error)
        assert f"127.0.0.1:{paused_redis.port}" in str(error)
        assert seconds < GIVE_UP


# ------------------------------------------------------------------------- ping()


def configure_shared_servers() -> None:
    asyncfeeds.configure(
        redis={
            "default": REDIS_URL,
            "cluster": "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in CLUSTER_PORTS),
        },
        cassandra={"default": {"hosts": ["127.0.0.1"], "port": CASSANDRA_PORT,
                               "keyspace": CASSANDRA_KEYSPACE, "consistency": "ONE"}},
    )



@pytest.mark.redis
@pytest.mark.redis_cluster
@pytest.mark.cassandra
async def test_ping_passes_when_every_configured_server_answers():
    configure_shared_servers()
    async with asyncio.timeout(GIVE_UP):
        assert await asyncfeeds.ping() is None


@pytest.mark.redis
@pytest.mark.redis_cluster
@pytest.mark.cassandra
async def test_ping_names_the_server_that_is_down():
    configure_shared_servers()
    dead = f"127.0.0.1:{free_port()}"
    asyncfeeds.configure(redis={"sessions": f"redis://{dead}/0"})
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError, match=f"'sessions' at {dead}"):
        await asyncfeeds.ping()
    assert time.monotonic() - started < GIVE_UP


async def test_ping_checks_the_environment_default(monkeypatch):
    dead = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("ASYNCFEEDS_REDIS_URL", f"redis://{dead}/0")
    with pytest.raises(StorageUnavailableError, match=f"'default' at {dead}"):
        await asyncfeeds.ping()


@pytest.mark.redis
@pytest.mark.redis_cluster
@pytest.mark.cassandra
async def test_ping_gives_up_on_a_hung_server_within_seconds(paused_redis):
    configure_shared_servers()
    asyncfeeds.configure(redis={"hung": paused_redis.url})
    paused_redis.pause()
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError, match=f"'hung' at 127.0.0.1:{paused_redis.port}"):
        await asyncfeeds.ping()
    assert time.monotonic() - started < GIVE_UP

