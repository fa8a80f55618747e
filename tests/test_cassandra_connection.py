"""Cassandra connections: one time bound for reads and writes, password auth and TLS, ping().

The hung servers are the test's own (a port that accepts and stays silent, a
proxy that stops forwarding); password auth and TLS run against the secure node
services/cassandra.sh starts (PasswordAuthenticator, client certificates required).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cluster_nodes import SECURE_CASSANDRA, SECURE_DIR
from helpers import CASSANDRA_KEYSPACE, CASSANDRA_PORT, make_activity
from private_servers import FreezingProxy, SilentServer, free_port, throwaway_ca

import asyncfeeds
from asyncfeeds import (
    CassandraAggregatedFeed,
    CassandraFeed,
    StorageUnavailableError,
)

GIVE_UP = 7.0  # seconds: the 5 s request/connect bound, with room for a busy machine
SECURE_KEYSPACE = "asyncfeeds_secure"


@pytest.fixture(autouse=True)
async def clean_settings() -> Iterator[None]:
    asyncfeeds.config.reset()
    yield
    await asyncfeeds.aclose()
    asyncfeeds.config.reset()


def feed_classes(cluster: str) -> tuple[type[CassandraFeed], type[CassandraAggregatedFeed]]:
    run = uuid.uuid4().hex[:10]
    attrs = {"cassandra_cluster": cluster, "activity_key_prefix": f"cc{run}:activity"}
    flat = {**attrs, "key_format": f"cc{run}:f:{{user_id}}"}
    aggregated = {**attrs, "key_format": f"cc{run}:a:{{user_id}}"}
    return (
        type("ConnFlat", (CassandraFeed,), flat),
        type("ConnAgg", (CassandraAggregatedFeed,), aggregated),
    )


async def every_call_fails_within_seconds(cluster: str, address: str) -> None:
    """Reads and writes of every kind, all at once: each raises in time, naming ``address``."""
    flat, aggregated = feed_classes(cluster)
    calls = [
        lambda: flat(1).add(make_activity(1)),
        lambda: flat(1)[:25],
        lambda: flat(1).count(),
        lambda: aggregated(1).add(make_activity(2)),
        lambda: aggregated(1)[:5],
    ]

    async def timed(call: Any) -> tuple[BaseException | None, float]:
        started = time.monotonic()
        try:
            await call()
        except Exception as exc:
            return exc, time.monotonic() - started
        return None, time.monotonic() - started

    for error, seconds in await asyncio.gather(*(timed(call) for call in calls)):
        assert isinstance(error, StorageUnavailableError), repr(error)
        assert address in str(error)
        assert "consistency ONE" in str(error)
        assert seconds < GIVE_UP, f"{seconds:.1f} s: {error}"


async def test_a_port_that_accepts_and_never_answers_fails_reads_and_writes_within_seconds():
    async with SilentServer() as silent:
        asyncfeeds.configure(cassandra={"silent": {
            "hosts": ["127.0.0.1"], "port": silent.port, "keyspace": CASSANDRA_KEYSPACE,
            "consistency": "ONE"}})
        await every_call_fails_within_seconds("silent", f"127.0.0.1:{silent.port}")


async def test_a_server_that_hangs_mid_session_fails_reads_and_writes_within_seconds():
    async with FreezingProxy("127.0.0.1", CASSANDRA_PORT) as proxy:
        asyncfeeds.configure(cassandra={"proxied": {
            "hosts": ["127.0.0.1"], "port": proxy.port, "keyspace": CASSANDRA_KEYSPACE,
            "consistency": "ONE"}})
        flat, aggregated = feed_classes("proxied")
        await asyncfeeds.setup(flat, aggregated)
        await flat(1).add(make_activity(1))  # connected, statements prepared
        await aggregated(1).add(make_activity(1))
        proxy.freeze()
        await every_call_fails_within_seconds("proxied", f"127.0.0.1:{proxy.port}")


async def test_ping_names_a_cassandra_that_is_down():
    port = free_port()
    asyncfeeds.configure(cassandra={
        "default": {"hosts": ["127.0.0.1"], "port": CASSANDRA_PORT,
                    "keyspace": CASSANDRA_KEYSPACE, "consistency": "ONE"},
        "archive": {"hosts": ["127.0.0.1"], "port": port, "consistency": "ONE"},
    })
    with pytest.raises(StorageUnavailableError, match=f"'archive' at 127.0.0.1:{port}"):
        await asyncfeeds.ping()


# ------------------------------------------------------------------------- the secure node


def secure(**overrides: Any) -> dict[str, Any]:
    """Options that log in to the secure node with a password and a client certificate."""
    options: dict[str, Any] = {
        "hosts": [SECURE_CASSANDRA], "keyspace": SECURE_KEYSPACE, "consistency": "ONE",
        "username": "cassandra", "password": "cassandra",
        "ssl_ca_certs": str(SECURE_DIR / "ca.pem"),
        "ssl_certfile": str(SECURE_DIR / "client.pem"),
        "ssl_keyfile": str(SECURE_DIR / "client.key"),
    }
    options.update(overrides)
    return {key: value for key, value in options.items() if value is not None}


async def roundtrip(cluster: str) -> None:
    flat, aggregated = feed_classes(cluster)
    await asyncfeeds.setup(flat, aggregated)
    await flat(1).add(make_activity(1))
    await aggregated(1).add(make_activity(1))
    assert [a.object for a in await flat(1)[:]] == [1]
    assert await aggregated(1).count() == 1
    await flat.flush()
    await aggregated.flush()


async def test_password_and_tls_with_a_client_certificate():
    asyncfeeds.configure(cassandra={"secure": secure()})
    await roundtrip("secure")
    await asyncfeeds.ping()


async def test_password_and_tls_from_the_environment(monkeypatch):
    for option, value in secure().items():
        value = ",".join(value) if isinstance(value, list) else value
        monkeypatch.setenv(f"ASYNCFEEDS_CASSANDRA_{option.upper()}", value)
    await roundtrip("default")
    await asyncfeeds.ping()  # the environment's default is checked


async def test_tls_without_verifying_the_server():
    asyncfeeds.configure(cassandra={"secure": secure(ssl_ca_certs=None, ssl_verify=False)})
    await roundtrip("secure")


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("wrong password", "Bad credentials"),
        ("no password", "Authentication required"),
        ("no TLS", "No hosts available"),
        ("unknown CA", "Invalid peer certificate"),
    ],
)
async def test_refused_logins_and_handshakes_are_storage_unavailable(problem, message, tmp_path):
    options = {
        "wrong password": secure(password="nope"),
        "no password": secure(username=None, password=None),
        "no TLS": secure(ssl_ca_certs=None, ssl_certfile=None, ssl_keyfile=None),
        "unknown CA": secure(ssl_ca_certs=str(throwaway_ca(tmp_path).ca)),
    }[problem]
    asyncfeeds.configure(cassandra={"secure": options})
    flat, _ = feed_classes("secure")
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError, match=message) as raised:
        await flat(1).count()
    assert f"{SECURE_CASSANDRA}:9042" in str(raised.value)
    assert "nope" not in str(raised.value)  # a password is never echoed
    assert time.monotonic() - started < GIVE_UP

