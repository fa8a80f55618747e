"""Redis connections: unreachable servers fail fast and clearly, named servers, scripts by SHA."""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest
from helpers import REDIS_URL, Backend, Like, backends, make_activity
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import ResponseError

import asyncfeeds
from asyncfeeds import (
    RedisAggregatedFeed,
    RedisFeed,
    RedisNotificationFeed,
    StorageUnavailableError,
)
from asyncfeeds.storage.base import GroupQuery, GroupWrite
from asyncfeeds.storage.redis import get_server
from asyncfeeds.storage.redis.connection import create_client
from asyncfeeds.storage.redis.keys import timeline_key
from asyncfeeds.storage.redis.scripts import Lua

REDIS_BACKENDS = backends("redis", "redis-cluster")
GIVE_UP = 10  # seconds: an unreachable server must raise well before this, never hang


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(params=["redis", "redis+cluster"])
async def unreachable(request):
    """A configured server name whose URL points at a closed port; yields (name, address)."""
    name = f"down-{uuid.uuid4().hex[:8]}"
    address = f"127.0.0.1:{closed_port()}"
    asyncfeeds.configure(redis={name: f"{request.param}://{address}"})
    yield name, address
    await asyncfeeds.aclose()


async def test_unreachable_server_raises_storage_unavailable_naming_the_address(unreachable):
    name, address = unreachable
    backend = Backend(
        "redis",
        type("Down", (RedisFeed,), {"redis_server": name}),
        type("DownAggregated", (RedisAggregatedFeed,), {"redis_server": name}),
        type("DownNotification", (RedisNotificationFeed,), {"redis_server": name}),
    )
    flat = backend.feed()(1)
    aggregated = backend.feed("aggregated")(1)
    notification = backend.feed("notification")(1)
    attempts = [
        lambda: flat.add(make_activity(1)),
        lambda: flat[:25],
        lambda: flat.count(),
        lambda: aggregated.add(make_activity(1)),
        lambda: notification.count_unseen(),
        lambda: notification.mark_all(),
        lambda: anext(notification.subscribe()),
        lambda: backend.flat.flush(),
    ]
    for attempt in attempts:
        async with asyncio.timeout(GIVE_UP):
            with pytest.raises(StorageUnavailableError, match=address):
                await attempt()


@pytest.mark.redis
async def test_a_server_that_comes_back_is_used_again(unreachable):
    name, _ = unreachable
    feed_class = type("Flaky", (RedisFeed,), {"redis_server": name, "key_format": "f:{user_id}"})
    with pytest.raises(StorageUnavailableError):
        await feed_class(1).count()
    asyncfeeds.configure(redis={name: REDIS_URL})
    assert await feed_class(uuid.uuid4().hex).count() == 0


def test_cluster_urls_make_cluster_clients_and_bad_schemes_fail():
    assert isinstance(create_client("redis+cluster://127.0.0.1:7101"), RedisCluster)
    assert isinstance(create_client("redis://127.0.0.1:6390/0"), Redis)
    with pytest.raises(ValueError, match="scheme"):
        create_client("http://127.0.0.1:6390")


@pytest.mark.redis
@pytest.mark.parametrize("backend", backends("redis"), indirect=True)
async def test_feed_classes_use_their_named_server(backend):
    other = f"other-{uuid.uuid4().hex[:8]}"
    asyncfeeds.configure(redis={other: REDIS_URL.rsplit("/", 1)[0] + "/1"})
    default_feed = backend.feed()(1)
    other_feed = backend.feed(redis_server=other)(1)
    await default_feed.add(make_activity(1))
    await other_feed.add_many([make_activity(2), make_activity(3)])
    assert await get_server("default").call("ZCARD", timeline_key(default_feed.key)) == 1
    assert await get_server("default").call("EXISTS", timeline_key(other_feed.key)) == 0
    assert await get_server(other).call("ZCARD", timeline_key(other_feed.key)) == 2
    assert [a.object for a in await other_feed[:]] == [3, 2]


@pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)
async def test_scripts_unknown_to_the_server_are_loaded_and_only_those_calls_resent(backend):
    server = get_server("default")
    probe = Lua(f"probe-{uuid.uuid4().hex}", "return redis.call('INCR', KEYS[1])")
    keys = [f"{{t{backend.run_id}:probe:{n}}}:n" for n in range(12)]  # spread over the nodes
    try:
        commands = [("INCR", keys[0])] + [server.evalsha(probe, [k], []) for k in keys]
        assert await server.run(commands) == [1, 2] + [1] * 11  # the INCR was not sent twice
        assert await server.run([server.evalsha(probe, [k], []) for k in keys]) == [3] + [2] * 11
    finally:
        await server.delete(keys)


@pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)
async def test_a_writer_that_read_before_a_delete_cannot_commit_after_it(backend):
    feed = backend.feed("notification")(1)
    storage = feed.get_group_storage()
    await feed.add(make_activity(1, verb=Like))
    (stale,) = await storage.read_many([feed.key], GroupQuery())
    await feed.delete()
    await feed.add(make_activity(2, verb=Like))  # as many commits as before the delete
    write = GroupWrite(feed.key, stale.version, upserts=[], removals=[], max_length=0)
    assert await storage.commit_many([write], True) == [False]
    assert await feed.count() == 1


def test_small_commands_are_packed_as_redis_py_packs_them():
    from redis.asyncio.connection import Connection

    from asyncfeeds.storage.redis.calls import SMALL_COMMAND, _pack

    command = ("EVALSHA", "ab12", 1, "{feed:1}:tl", "{activity:", 16, "ZREVRANGE", 0, -1,
               b"\x00\xff", "ü")
    assert _pack(command) == b"".join(Connection().pack_command(*command))
    assert _pack(("ZADD", "k", 1.5, "m")) is None  # other types: redis-py packs them
    assert _pack(("SET", "k", b"x" * (SMALL_COMMAND + 1))) is None


@pytest.mark.parametrize("backend", backends("redis"), indirect=True)
async def test_concurrent_lone_script_calls_each_get_their_own_reply(backend):
    server = get_server("default")
    probe = Lua(
        f"probe-{uuid.uuid4().hex}",
        "if ARGV[1] == 'fail' then return redis.error_reply('failed ' .. KEYS[1]) end "
        "return redis.call('INCR', KEYS[1])",
    )
    keys = [f"{{t{backend.run_id}:batch:{n}}}:n" for n in range(40)]
    try:
        # a script new to the server: the calls that meet NOSCRIPT are loaded and resent
        first = await asyncio.gather(*(server.run([server.evalsha(probe, [k], [])]) for k in keys))
        assert first == [[1]] * len(keys)
        outcomes = await asyncio.gather(
            *(
                server.run([server.evalsha(probe, [key], ["fail" if n % 3 == 0 else "ok"])])
                for n, key in enumerate(keys)
            ),
            return_exceptions=True,
        )
        for n, (key, outcome) in enumerate(zip(keys, outcomes, strict=True)):
            if n % 3 == 0:
                assert isinstance(outcome, ResponseError) and f"failed {key}" in str(outcome)
            else:
                assert outcome == [2]
        values = await server.run([("GET", key) for key in keys])
        assert values == [b"1" if n % 3 == 0 else b"2" for n in range(len(keys))]
    finally:
        await server.delete(keys)


@pytest.mark.parametrize("backend", backends("redis"), indirect=True)
async def test_a_pooled_connection_the_server_closed_is_replaced_before_a_read(backend):
    feed = backend.feed()(1)
    await feed.add(make_activity(1))
    assert len(await feed[:5]) == 1
    client = get_server("default").client()
    # the pool hands out its last returned connection first: the one the read used
    own = await client.execute_command("CLIENT", "ID")
    await client.execute_command("CLIENT", "KILL", "ID", own, "SKIPME", "no")  # server closes it
    await asyncio.sleep(0.05)
    assert [a.activity_id for a in await feed[:5]] == [make_activity(1).activity_id]
