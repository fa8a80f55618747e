"""``asyncfeeds.testing``: what users' own test suites call."""

from __future__ import annotations

from helpers import make_activity

from asyncfeeds import MemoryAggregatedFeed, MemoryFeed, MemoryNotificationFeed
from asyncfeeds.testing import reset_memory_backend


class ResetFeed(MemoryFeed):
    key_format = "reset:flat:{user_id}"


class ResetAggregatedFeed(MemoryAggregatedFeed):
    key_format = "reset:aggregated:{user_id}"


class ResetNotificationFeed(MemoryNotificationFeed):
    key_format = "reset:notification:{user_id}"


async def test_reset_memory_backend_empties_every_memory_feed_and_activity() -> None:
    activities = [make_activity(n) for n in range(3)]
    feeds = (ResetFeed(1), ResetAggregatedFeed(1), ResetNotificationFeed(1))
    for feed in feeds:
        await feed.add_many(activities)
        assert await feed.count() > 0
    assert await ResetNotificationFeed(1).count_unseen() == 3

    reset_memory_backend()

    for feed in feeds:
        assert await feed.count() == 0
        assert await feed[:10] == []
    assert await ResetNotificationFeed(1).count_unseen() == 0
    stored = await ResetFeed.get_activity_storage().get_many([a.activity_id for a in activities])
    assert stored == [None, None, None]

    assert await ResetFeed(1).add(activities[0]) == 1  # the feeds work on after a reset
    assert [a.activity_id for a in await ResetFeed(1)[:10]] == [activities[0].activity_id]
