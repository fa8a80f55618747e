"""Notification feeds on every backend: unseen/unread tracking, marking, and subscribe()."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from helpers import Like, make_activity

from asyncfeeds import MemoryNotificationFeed, NotificationActivity, NotificationAggregator

DAY = 24 * 60
WAIT = 10  # seconds before a missing subscription message fails the test instead of hanging


def liked(n: int, object: int, day: int = 0):
    """Actor ``n`` liked ``object`` on ``day``: one notification group per object and day."""
    return make_activity(n, actor=n, verb=Like, object=object, minutes=day * DAY + n)


def states(groups) -> dict[int, tuple[bool, bool]]:
    """``object -> (is_seen, is_read)`` of each notification group."""
    return {g.activities[0].object: (g.is_seen, g.is_read) for g in groups}


async def counts(feed) -> tuple[int, int]:
    return await feed.count_unseen(), await feed.count_unread()


async def ids_by_object(feed) -> dict[int, str]:
    return {g.activities[0].object: g.aggregated_id for g in await feed[:]}


def test_notification_feed_defaults():
    assert MemoryNotificationFeed.max_length == 99
    assert MemoryNotificationFeed.aggregator_class is NotificationAggregator
    assert MemoryNotificationFeed.aggregated_activity_class is NotificationActivity


async def test_items_are_notification_activities_grouped_by_object(backend):
    feed = backend.feed("notification")(1)
    await feed.add_many([liked(1, 100), liked(2, 100), liked(3, 200)])
    groups = await feed[:]
    assert all(type(g) is NotificationActivity for g in groups)
    assert sorted(g.activity_count for g in groups) == [1, 2]
    assert await feed.count() == 2


async def test_new_groups_are_unseen_and_unread(backend):
    feed = backend.feed("notification")(1)
    assert await counts(feed) == (0, 0)
    await feed.add_many([liked(1, 100), liked(2, 100), liked(3, 200)])
    assert await counts(feed) == (2, 2)
    assert states(await feed[:]) == {100: (False, False), 200: (False, False)}
    assert ((await feed[0]).is_seen, (await feed[0]).is_read) == (False, False)


async def test_changed_group_becomes_unseen_and_unread_again(backend):
    feed = backend.feed("notification")(1)
    await feed.add_many([liked(1, 100), liked(2, 200)])
    await feed.mark_all(seen=True, read=True)
    assert await counts(feed) == (0, 0)
    await feed.add(liked(3, 100))
    assert await counts(feed) == (1, 1)
    assert states(await feed[:]) == {100: (False, False), 200: (True, True)}


async def test_re_adding_a_held_activity_changes_no_state(backend):
    feed = backend.feed("notification")(1)
    await feed.add(liked(1, 100))
    await feed.mark_all(seen=True, read=True)
    assert await feed.add(liked(1, 100)) == []
    assert await counts(feed) == (0, 0)


async def test_mark_activity_seen_leaves_read_as_is(backend):
    feed = backend.feed("notification")(1)
    await feed.add_many([liked(1, 100), liked(2, 200)])
    group_ids = await ids_by_object(feed)
    await feed.mark_activity(group_ids[100])
    assert await counts(feed) == (1, 2)
    assert states(await feed[:]) == {100: (True, False), 200: (False, False)}
    await feed.mark_activity(group_ids[100], seen=False, read=True)  # seen=False: leave as is
    assert states(await feed[:]) == {100: (True, True), 200: (False, False)}
    assert await counts(feed) == (1, 1)


async def test_mark_read_only_never_marks_unseen_or_seen(backend):
    feed = backend.feed("notification")(1)
    await feed.add_many([liked(1, 100), liked(2, 200)])
    group_ids = await ids_by_object(feed)
    await feed.mark_activity(group_ids[200], seen=False, read=True)
    assert states(await feed[:]) == {100: (False, False), 200: (False, True)}
    await feed.mark_activity(group_ids[200], seen=False, read=False)
    assert states(await feed[:]) == {100: (False, False), 200: (False, True)}
    assert await counts(feed) == (2, 1)


async def test_mark_activities(backend):
    feed = backend.feed("notification")(1)
    await feed.add_many([liked(1, 100), liked(2, 200), liked(3, 300)])
    group_ids = await ids_by_object(feed)
    await feed.mark_activities([group_ids[100], group_ids[300]], seen=True, read=True)
    assert states(await feed[:]) == {100: (True, True), 200: (False, False), 300: (True, True)}
    await feed.mark_activities([group_ids[200]], seen=True)
    assert states(await feed[:])[200] == (True, False)
    await feed.mark_activities([group_ids[100], group_ids[200]], seen=False, read=True)
    assert states(await feed[:]) == {100: (True, True), 200: (True, True), 300: (True, True)}
    assert await counts(feed) == (0, 0)


async def test_mark_all(backend):
    feed = backend.feed("notification")(1)
    await feed.add_many([liked(1, 100), liked(2, 200), liked(3, 300)])
    await feed.mark_all()
    assert await counts(feed) == (0, 3)
    assert set(states(await feed[:]).values()) == {(True, False)}
    await feed.add(liked(4, 400))
    await feed.mark_all(seen=False, read=True)
    assert await counts(feed) == (1, 0)
    assert states(await feed[:]) == {100: (True, True), 200: (True, True), 300: (True, True),
                                     400: (False, True)}


async def test_markers_follow_trimmed_and_removed_groups(backend):
    feed = backend.feed("notification", max_length=2)(1)
    await feed.add_many([liked(1, 100), liked(2, 200), liked(3, 300)])
    assert await feed.count() == 2
    assert await counts(feed) == (2, 2)
    await feed.remove(liked(3, 300))
    assert await counts(feed) == (1, 1)
    await feed.delete()
    assert await counts(feed) == (0, 0)


async def test_markers_are_per_feed(backend):
    feed_class = backend.feed("notification")
    await feed_class(1).add(liked(1, 100))
    await feed_class(2).add(liked(1, 100))
    await feed_class(1).mark_all(read=True)
    assert await counts(feed_class(1)) == (0, 0)
    assert await counts(feed_class(2)) == (1, 1)


@contextlib.asynccontextmanager
async def subscription(feed) -> AsyncIterator[asyncio.Queue]:
    """Consume ``feed.subscribe()``, live on entry, in a task; yields the queue of counts."""
    received: asyncio.Queue = asyncio.Queue()
    async with feed.subscribe() as stream:

        async def consume() -> None:
            async for item in stream:
                received.put_nowait(item)

        task = asyncio.create_task(consume())
        try:
            yield received
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def next_counts(received: asyncio.Queue) -> dict[str, int]:
    return await asyncio.wait_for(received.get(), WAIT)


async def test_subscribe_yields_the_counts_then_counts_after_each_change(backend):
    feed = backend.feed("notification")(1)
    async with subscription(feed) as received:
        assert await next_counts(received) == {"unseen_count": 0, "unread_count": 0}
        await feed.add(liked(1, 100))
        assert await next_counts(received) == {"unseen_count": 1, "unread_count": 1}
        await feed.add_many([liked(2, 100), liked(3, 200)])
        assert await next_counts(received) == {"unseen_count": 2, "unread_count": 2}
        group_ids = await ids_by_object(feed)
        await feed.mark_activity(group_ids[100])
        assert await next_counts(received) == {"unseen_count": 1, "unread_count": 2}
        await feed.mark_activities([group_ids[100], group_ids[200]], seen=False, read=True)
        assert await next_counts(received) == {"unseen_count": 1, "unread_count": 0}
        await feed.mark_all()
        assert await next_counts(received) == {"unseen_count": 0, "unread_count": 0}
        assert received.empty()


async def test_subscribe_only_hears_its_own_feed(backend):
    feed_class = backend.feed("notification")
    mine, other = feed_class(1), feed_class(2)
    await mine.add(liked(1, 999))
    async with subscription(mine) as received:
        assert await next_counts(received) == {"unseen_count": 1, "unread_count": 1}
        await other.add_many([liked(1, 100), liked(2, 200), liked(3, 300)])
        await mine.mark_all(read=True)
        assert await next_counts(received) == {"unseen_count": 0, "unread_count": 0}
