"""``NotificationFeed.subscribe()`` on every backend, as a badge uses it.

Live on entry (a change made right after ``async with`` is delivered), the
first item is the current counts, one item per change, a heartbeat timeout
does not end it, ``async with`` and ``async for`` both work, ``aclose()``
releases the connection, many subscribers at once. Cassandra runs twice:
polling (no Redis configured) and hearing changes through Redis.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from helpers import ALL_BACKENDS, MARKS, REDIS_URL, Like, make_activity

import asyncfeeds
from asyncfeeds.config import redis_url
from asyncfeeds.storage.redis.connection import close_client, create_pubsub_client
from asyncfeeds.storage.redis.keys import counts_channel
from asyncfeeds.storage.redis.notifier import channel as cassandra_channel
from asyncfeeds.types import Counts, Subscription

VARIANTS = [(b, False) for b in ALL_BACKENDS] + [("cassandra", True)]
pytestmark = pytest.mark.parametrize(
    ("backend", "via_redis"),
    [
        pytest.param(b, r, marks=MARKS[b], id=b + ("+redis" if r else ""))
        for b, r in VARIANTS
    ],
    indirect=["backend"],
)

WAIT = 10  # seconds before a missing item fails the test instead of hanging


def counts(unseen: int, unread: int | None = None) -> Counts:
    return {"unseen_count": unseen, "unread_count": unseen if unread is None else unread}


def liked(n: int, object: int = 100):
    """Actor ``n`` liked ``object``: one notification group per object."""
    return make_activity(n, actor=n, verb=Like, object=object)


async def next_item(updates: Subscription) -> Counts:
    return await asyncio.wait_for(anext(updates), WAIT)


@pytest.fixture
def feed_class(backend, via_redis):
    if via_redis:
        asyncfeeds.configure(redis={"default": REDIS_URL})
    return backend.feed("notification")


@pytest.fixture
async def subscribers(backend, via_redis):
    """``await subscribers(feed)``: how many connections listen to the feed's counts.

    ``None`` where no server connection carries them (memory, Cassandra polling).
    """
    if backend.name == "memory" or (backend.name == "cassandra" and not via_redis):
        yield lambda feed: asyncio.sleep(0)
        return
    client = create_pubsub_client(redis_url("default"))

    async def count(feed) -> int:
        name = cassandra_channel(feed.key) if via_redis else counts_channel(feed.key)
        ((_, number),) = await client.pubsub_numsub(name)
        return int(number)

    yield count
    await close_client(client)


async def wait_for_subscribers(subscribers, feed, expected: int) -> None:
    """Poll the server until ``expected`` connections listen (a closed socket takes a moment)."""
    async with asyncio.timeout(WAIT):
        while await subscribers(feed) not in (None, expected):  # noqa: ASYNC110 (a server)
            await asyncio.sleep(0.01)


async def test_a_change_made_right_after_entering_is_delivered(feed_class):
    for user_id in range(20):
        feed = feed_class(user_id)
        async with feed.subscribe() as updates:
            await feed.add(liked(1))
            assert await next_item(updates) == counts(0)
            assert await next_item(updates) == counts(1)


async def test_the_first_item_is_the_current_counts(feed_class):
    feed = feed_class(1)
    await feed.add_many([liked(1, 100), liked(2, 200), liked(3, 300)])
    (newest, *_) = await feed[:]
    await feed.mark_activity(newest.aggregated_id)
    async with feed.subscribe() as updates:
        assert await next_item(updates) == counts(2, 3)
        await feed.mark_all(seen=False, read=True)
        assert await next_item(updates) == counts(2, 0)


async def test_one_item_per_change(feed_class):
    feed = feed_class(1)
    async with feed.subscribe() as updates:
        await feed.add(liked(1, 100))
        await feed.add_many([liked(2, 100), liked(3, 200)])
        ids = [g.aggregated_id for g in await feed[:]]
        await feed.mark_activity(ids[0])
        await feed.mark_activities(ids, seen=False, read=True)
        await feed.mark_all(seen=False, read=True)  # all read already: no item
        await feed.delete()
        await feed.add(liked(4, 300))
        received = [await next_item(updates) for _ in range(7)]
    assert received == [
        counts(0),
        counts(1),
        counts(2),
        counts(1, 2),
        counts(1, 0),
        counts(0),
        counts(1),
    ]


async def test_a_heartbeat_timeout_does_not_end_the_subscription(feed_class, subscribers):
    feed = feed_class(1)
    async with feed.subscribe() as updates:
        assert await next_item(updates) == counts(0)
        for _ in range(3):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(anext(updates), 0.2)
        await wait_for_subscribers(subscribers, feed, 1)
        await feed.add(liked(1))
        assert await next_item(updates) == counts(1)


async def test_a_cancelled_first_anext_leaves_the_subscription_starting(feed_class):
    feed = feed_class(1)
    updates = feed.subscribe()
    try:
        first = asyncio.create_task(anext(updates))
        await asyncio.sleep(0)  # let it begin going live
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        assert await next_item(updates) == counts(0)
        await feed.add(liked(1))
        assert await next_item(updates) == counts(1)
    finally:
        await updates.aclose()


async def test_async_for_gets_the_counts_then_each_change(feed_class):
    feed = feed_class(1)
    received: list[Counts] = []
    async with asyncio.timeout(WAIT):
        async for item in feed.subscribe():
            received.append(item)
            if len(received) == 3:
                break
            await feed.add(liked(len(received), object=100 * len(received)))
    assert received == [counts(0), counts(1), counts(2)]


async def test_aclose_ends_a_waiting_consumer_and_releases_the_connection(
    feed_class, subscribers
):
    feed = feed_class(1)
    updates = feed.subscribe()
    assert await next_item(updates) == counts(0)
    assert await subscribers(feed) in (None, 1)
    waiting = asyncio.create_task(anext(updates))
    await asyncio.sleep(0)
    await updates.aclose()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, WAIT)
    await wait_for_subscribers(subscribers, feed, 0)
    with pytest.raises(StopAsyncIteration):
        await anext(updates)
    await updates.aclose()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        async with updates:
            pass

    async with feed.subscribe() as updates:
        assert await subscribers(feed) in (None, 1)  # live on entry: no waiting
    await wait_for_subscribers(subscribers, feed, 0)


async def test_many_concurrent_subscribers_each_get_every_change(feed_class, subscribers):
    feed = feed_class(1)
    many = [feed.subscribe() for _ in range(50)]
    try:
        await asyncio.gather(*(updates.__aenter__() for updates in many))
        assert await subscribers(feed) in (None, 50)
        await feed.add(liked(1))
        received = await asyncio.gather(*(next_item(u) for u in many))
        assert received == [counts(0)] * 50
        received = await asyncio.gather(*(next_item(u) for u in many))
        assert received == [counts(1)] * 50
    finally:
        await asyncio.gather(*(updates.aclose() for updates in many))
    await wait_for_subscribers(subscribers, feed, 0)


async def test_subscribers_joining_during_writes_see_each_count_once_in_order(feed_class):
    feed, total = feed_class(1), 30
    progress = [asyncio.Event() for _ in range(total)]

    async def write() -> None:
        for n in range(total):
            progress[n].set()
            await feed.add(liked(n, object=n))  # a new group each: counts go up by one

    async def join(after: int) -> list[int]:
        await progress[after].wait()
        async with feed.subscribe() as updates:
            seen = [(await next_item(updates))["unseen_count"]]
            while seen[-1] < total:
                seen.append((await next_item(updates))["unseen_count"])
        return seen

    _, *joined = await asyncio.gather(write(), *(join(after) for after in range(0, total, 3)))
    for seen in joined:
        assert seen == list(range(seen[0], total + 1))
