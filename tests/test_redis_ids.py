"""Ids and filters on Redis are exact: string ids ordered lexicographically, no double scores.

Stream Framework scored timelines by float timestamps and lost microseconds for
far-future times; here neighbours 1 µs apart stay distinct and in order at any time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from helpers import Pin, backends

from asyncfeeds import Activity

REDIS_BACKENDS = backends("redis", "redis-cluster")
pytestmark = pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)

MICRO = timedelta(microseconds=1)
INSTANTS = [
    datetime(1970, 1, 1, tzinfo=UTC) + MICRO,
    datetime(2024, 1, 1, 12, 0, 0, 1, tzinfo=UTC),
    datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC),  # past 2**53 microseconds
    datetime(5000, 12, 31, 23, 59, 59, 999998, tzinfo=UTC),
]


def at(time: datetime, actor: int) -> Activity:
    return Activity(actor=actor, verb=Pin, object=actor, time=time)


def ids(activities) -> list[str]:
    return [a.activity_id for a in activities]


@pytest.fixture
def spread() -> list[Activity]:
    """Pairs 1 µs apart at far-apart instants, plus three in one microsecond; oldest first."""
    activities = []
    for n, instant in enumerate(INSTANTS):
        activities += [at(instant, 10 * n), at(instant + MICRO, 10 * n + 1)]
    activities += [at(INSTANTS[1] + 2 * MICRO, actor) for actor in (100, 101, 102)]
    return sorted(activities, key=lambda a: a.activity_id)


async def test_order_is_exact_for_neighbours_one_microsecond_apart(backend, spread):
    feed = backend.feed(max_length=100)(1)
    assert await feed.add_many(spread) == len(spread)
    assert ids(await feed[:]) == ids(reversed(spread))
    assert ids(await feed.order_by("activity_id")[:]) == ids(spread)
    for position, activity in enumerate(reversed(spread)):
        assert await feed.index_of(activity) == position


async def test_each_bound_is_exact_at_every_id(backend, spread):
    feed = backend.feed(max_length=100)(1)
    await feed.add_many(spread)
    for i, pivot in enumerate(spread):
        assert ids(await feed.filter(activity_id__lt=pivot)[:]) == ids(reversed(spread[:i]))
        assert ids(await feed.filter(activity_id__lte=pivot)[:]) == ids(reversed(spread[: i + 1]))
        newer = feed.filter(activity_id__gt=pivot).order_by("activity_id")
        assert ids(await newer[:]) == ids(spread[i + 1 :])
        assert ids(await feed.filter(activity_id__gte=pivot)[:1]) == [ids(spread)[-1]]


async def test_combined_bounds_take_the_tightest_and_page_within_them(backend, spread):
    feed = backend.feed(max_length=100)(1)
    await feed.add_many(spread)
    window = feed.filter(activity_id__gt=spread[1], activity_id__gte=spread[0])
    window = window.filter(activity_id__lt=spread[9], activity_id__lte=spread[10])
    assert ids(await window[:]) == ids(reversed(spread[2:9]))
    assert ids(await window[2:4]) == ids(reversed(spread[2:9]))[2:4]
    assert ids(await window.order_by("activity_id")[1:3]) == ids(spread[3:5])
    assert await window[7:] == []
    assert await feed.filter(activity_id__gt=spread[-1])[:] == []


async def test_same_microsecond_activities_are_distinct_and_all_kept(backend):
    feed = backend.feed(max_length=100)(1)
    instant = datetime(2024, 6, 1, tzinfo=UTC)
    same = [at(instant, actor) for actor in range(20)]
    assert len(set(ids(same))) == 20
    assert await feed.add_many(same) == 20
    assert sorted(ids(await feed[:])) == sorted(ids(same))
    pivot = sorted(ids(same))[10]
    assert len(await feed.filter(activity_id__lt=pivot)[:]) == 10
    assert len(await feed.filter(activity_id__gte=pivot)[:]) == 10


async def test_trim_keeps_the_newest_by_id(backend, spread):
    feed = backend.feed(max_length=100)(1)
    await feed.add_many(spread)
    await feed.trim(3)
    assert ids(await feed[:]) == ids(reversed(spread[-3:]))

