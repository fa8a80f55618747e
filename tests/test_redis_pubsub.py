"""Notification counts over Redis pub/sub: delivery, and cleanup when the consumer stops."""

from __future__ import annotations

import asyncio
import gc

import pytest
from helpers import Like, backends, make_activity

from asyncfeeds.config import redis_url
from asyncfeeds.storage.redis import get_server
from asyncfeeds.storage.redis.connection import address_of, close_client, create_pubsub_client
from asyncfeeds.storage.redis.keys import counts_channel, group_keys

REDIS_BACKENDS = backends("redis", "redis-cluster")
pytestmark = pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)

WAIT = 10  # seconds before a missing message or cleanup fails the test instead of hanging


def liked(n: int, object: int = 100):
    return make_activity(n, actor=n, verb=Like, object=object)


@pytest.fixture
async def subscribers(backend):
    """``await subscribers(feed)``: the server-side subscriber count of a feed's channel.

    Asks the node the subscriptions connect to (the seed node of a cluster).
    """
    client = create_pubsub_client(redis_url("default"))

    async def count(feed) -> int:
        ((_, number),) = await client.pubsub_numsub(counts_channel(feed.key))
        return int(number)

    yield count
    await close_client(client)


async def wait_for_subscribers(subscribers, feed, expected: int) -> None:
    """Poll the server until the channel has ``expected`` subscribers (fails after WAIT s)."""
    async with asyncio.timeout(WAIT):
        while True:
            if await subscribers(feed) == expected:
                return
            await asyncio.sleep(0.01)


async def far_feed(backend):
    """A notification feed whose keys live on another node than the seed (on a cluster)."""
    feed_class = backend.feed("notification")
    if backend.name != "redis-cluster":
        return feed_class(1)
    client = get_server("default").client()
    await client.initialize()
    seed = address_of(redis_url("default"))
    for user_id in range(1, 100):
        node = client.get_node_from_key(group_keys(feed_class.feed_key(user_id))[0])
        if node.name != seed:
            return feed_class(user_id)
    raise AssertionError("no key found on another node")


async def test_subscription_is_live_on_entry_and_hears_every_change(backend, subscribers):
    feed = await far_feed(backend)
    async with feed.subscribe() as stream:
        assert await subscribers(feed) == 1  # confirmed by the server before entering
        await feed.add(liked(1))
        await feed.add_many([liked(2), liked(3, object=200)])
        ids = [g.aggregated_id for g in await feed[:]]
        await feed.mark_activity(ids[0])
        await feed.mark_activities(ids, seen=False, read=True)
        await feed.mark_all(seen=False, read=True)  # changes nothing: no message
        await feed.mark_all(seen=True)
        await feed.delete()
        received = [await asyncio.wait_for(anext(stream), WAIT) for _ in range(7)]
    assert received == [
        {"unseen_count": 0, "unread_count": 0},
        {"unseen_count": 1, "unread_count": 1},
        {"unseen_count": 2, "unread_count": 2},
        {"unseen_count": 1, "unread_count": 2},
        {"unseen_count": 1, "unread_count": 0},
        {"unseen_count": 0, "unread_count": 0},
        {"unseen_count": 0, "unread_count": 0},
    ]
    await wait_for_subscribers(subscribers, feed, 0)


async def test_break_out_of_async_for_unsubscribes(backend, subscribers):
    feed = backend.feed("notification")(1)
    received = []

    async def consume() -> None:
        async for counts in feed.subscribe():
            received.append(counts)
            if len(received) == 2:
                break
            await feed.add(liked(1))

    await asyncio.wait_for(consume(), WAIT)
    assert received == [
        {"unseen_count": 0, "unread_count": 0},
        {"unseen_count": 1, "unread_count": 1},
    ]
    gc.collect()  # the dropped iterator's finaliser closes its connection
    await wait_for_subscribers(subscribers, feed, 0)


async def test_cancelled_consumer_unsubscribes(backend, subscribers):
    feed = backend.feed("notification")(1)

    async def consume() -> None:
        async for _ in feed.subscribe():
            pass

    consumer = asyncio.create_task(consume())
    await wait_for_subscribers(subscribers, feed, 1)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    await wait_for_subscribers(subscribers, feed, 0)


async def test_aclose_and_async_with_unsubscribe(backend, subscribers):
    feed = backend.feed("notification")(1)
    stream = feed.subscribe()
    assert await subscribers(feed) == 0  # nothing is opened before first use
    assert await asyncio.wait_for(anext(stream), WAIT) == {"unseen_count": 0, "unread_count": 0}
    assert await subscribers(feed) == 1
    await stream.aclose()
    await wait_for_subscribers(subscribers, feed, 0)
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    await stream.aclose()  # twice is fine

    async with feed.subscribe() as stream:
        assert await subscribers(feed) == 1
    await wait_for_subscribers(subscribers, feed, 0)


async def test_a_dropped_live_subscription_unsubscribes(backend, subscribers):
    feed = backend.feed("notification")(1)
    stream = feed.subscribe()
    await asyncio.wait_for(anext(stream), WAIT)
    assert await subscribers(feed) == 1
    del stream
    gc.collect()
    await wait_for_subscribers(subscribers, feed, 0)


async def test_a_timed_out_read_keeps_the_connection_subscribed(backend, subscribers):
    feed = backend.feed("notification")(1)
    async with feed.subscribe() as stream:
        await asyncio.wait_for(anext(stream), WAIT)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(stream), 0.2)
        assert await subscribers(feed) == 1
        await feed.add(liked(1))
        assert await asyncio.wait_for(anext(stream), WAIT) == {"unseen_count": 1, "unread_count": 1}


async def test_many_subscribers_each_get_every_change(backend, subscribers):
    feed = backend.feed("notification")(1)
    streams = [feed.subscribe() for _ in range(3)]
    try:
        for stream in streams:
            await stream.__aenter__()
        assert await subscribers(feed) == 3
        await feed.add(liked(1))
        for stream in streams:
            first = await asyncio.wait_for(anext(stream), WAIT)
            assert first == {"unseen_count": 0, "unread_count": 0}
            counts = await asyncio.wait_for(anext(stream), WAIT)
            assert counts == {"unseen_count": 1, "unread_count": 1}
    finally:
        for stream in streams:
            await stream.aclose()
    await wait_for_subscribers(subscribers, feed, 0)

