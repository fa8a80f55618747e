"""API.md "Pages and cursors", on every backend and feed kind, with writers running meanwhile."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helpers import Backend, Like, Pin

from asyncfeeds import Activity, Page
from asyncfeeds.aggregators import NotificationAggregator

START = datetime(2024, 6, 1, tzinfo=UTC)


def activity(n: int, *, object: int | None = None, verb: type = Pin) -> Activity:
    return Activity(actor=n % 50, verb=verb, object=n if object is None else object,
                    time=START + timedelta(seconds=n))


async def walk(feed: Any, limit: int, during: Any = None) -> list[Any]:
    """Every page of ``feed`` by cursors; ``during`` runs a write between pages."""
    items: list[Any] = []
    cursor = None
    pages = 0
    while True:
        page = await feed.page(limit=limit, cursor=cursor)
        assert isinstance(page, Page) and len(page.items) <= limit
        items.extend(page.items)
        pages += 1
        if during is not None:
            await during(pages)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


async def test_a_flat_walk_returns_every_activity_once_while_new_ones_arrive(
    backend: Backend,
) -> None:
    feed = backend.feed(max_length=5000)(1)
    before = [activity(n) for n in range(1000)]
    await feed.add_many(before)

    async def add_newer(pages: int) -> None:  # newer than everything: they go on top
        await feed.add_many([activity(10_000 + 3 * pages + i) for i in range(3)])

    walked = await walk(feed, 7, add_newer)
    ids = [a.activity_id for a in walked]
    assert len(ids) == len(set(ids))
    assert ids == sorted((a.activity_id for a in before), reverse=True)
    assert [a.activity_id async for a in feed][:3] == sorted(ids + [
        activity(n).activity_id for n in range(10_000, 10_000 + 3 * 144)
    ], reverse=True)[:3]


async def test_a_flat_walk_survives_removals_and_keeps_filters_and_order(
    backend: Backend,
) -> None:
    feed = backend.feed(max_length=500)(1)
    items = [activity(n) for n in range(60)]
    await feed.add_many(items)
    first = await feed.page(limit=10)
    await feed.remove_many(items[40:50])  # removed while a walk is between pages
    rest = await walk_from(feed, first)
    assert len(first.items) + len(rest) == 50
    oldest_first = feed.order_by("activity_id").filter(activity_id__gte=items[5])
    walked = await walk(oldest_first, 4)
    assert [a.activity_id for a in walked] == [
        a.activity_id for a in items[5:40] + items[50:]
    ]
    with pytest.raises(ValueError, match="ordering"):
        await feed.page(limit=4, cursor=(await oldest_first.page(limit=4)).next_cursor)


async def walk_from(feed: Any, page: Any) -> list[Any]:
    items: list[Any] = []
    while page.next_cursor is not None:
        page = await feed.page(limit=10, cursor=page.next_cursor)
        items.extend(page.items)
    return items


@pytest.mark.parametrize("kind", ["aggregated", "notification"])
async def test_an_aggregated_walk_returns_each_group_once_while_groups_change(
    backend: Backend, kind: str
) -> None:
    feed = backend.feed(kind, aggregator_class=NotificationAggregator, max_length=1000,
                        merge_max_length=1000)(1)
    await feed.add_many([activity(n, verb=Like) for n in range(300)])  # 300 groups
    touched: set[int] = set()

    async def write(pages: int) -> None:
        changed = (pages * 37) % 300  # another like of an existing object: it moves up
        touched.add(changed)
        await feed.add_many([
            Activity(actor=999, verb=Like, object=changed, time=START + timedelta(seconds=changed,
                     microseconds=pages)),
            activity(5000 + pages, verb=Like),  # and a new group on top
        ])

    walked = await walk(feed, 7, write)
    ids = [g.aggregated_id for g in walked]
    assert len(ids) == len(set(ids))  # no group twice
    objects = {g.activities[0].object for g in walked}
    untouched = set(range(300)) - touched
    assert untouched <= objects  # every unchanged group exactly once
    assert sum(1 for g in walked if g.activities[0].object in untouched) == len(untouched)
    if kind == "notification":
        assert all(g.is_seen is False for g in walked)


async def test_limits_and_foreign_or_malformed_cursors_raise(backend: Backend) -> None:
    flat, other = backend.feed()(1), backend.feed()(2)
    aggregated = backend.feed("aggregated")(1)
    await flat.add_many([activity(n) for n in range(5)])
    await other.add_many([activity(n) for n in range(5)])
    await aggregated.add_many([activity(n * 86_400, verb=Like) for n in range(5)])  # 5 days
    cursor = (await flat.page(limit=2)).next_cursor
    assert cursor is not None and cursor.replace("-", "").replace("_", "").isalnum()
    for limit in (0, 1001, -1, True, "5", None):
        with pytest.raises(ValueError):
            await flat.page(limit=limit)  # type: ignore[arg-type]
    forged = base64.urlsafe_b64encode(b'["flat", "x", ["-", "9"]]').decode()
    for bad in ("", "%%%", "bm90IGpzb24", forged, "a" * 5000, 42):
        with pytest.raises(ValueError):
            await flat.page(limit=2, cursor=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="another feed"):
        await other.page(limit=2, cursor=cursor)
    with pytest.raises(ValueError, match="flat"):
        await aggregated.page(limit=2, cursor=cursor)
    group_cursor = (await aggregated.page(limit=1)).next_cursor
    assert group_cursor is not None
    with pytest.raises(ValueError):
        await flat.page(limit=2, cursor=group_cursor)
    assert (await flat.page(limit=1000)).next_cursor is None


async def test_empty_feeds_have_one_empty_page(backend: Backend) -> None:
    for kind in ("flat", "aggregated", "notification"):
        page = await backend.feed(kind)(1).page()
        assert page.items == [] and page.next_cursor is None


def test_page_is_a_generic_model_with_json_schema() -> None:
    schema = Page[Activity].model_json_schema()
    assert schema["properties"]["next_cursor"]["anyOf"][0] == {"type": "string"}
    dumped = Page[int](items=[1, 2], next_cursor=None).model_dump()
    assert dumped == {"items": [1, 2], "next_cursor": None}
    asyncio.get_event_loop_policy()  # the module imports cleanly without a running loop
