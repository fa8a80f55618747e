"""API.md "Large accounts: push and pull", on every backend, eager and arq.

Authors with more followers than ``pull_threshold`` are not fanned out to flat feeds;
``read_feed`` merges them in at read time. Each test takes an edge: an author crossing
the threshold between two posts, a reader with no pulled authors, a reader following
fifty, a cursor walk while everyone posts, unfollow, remove, follow.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio
from arq.connections import ArqRedis
from helpers import REDIS_URL, Backend, Like, Pin, backends

from asyncfeeds import Activity, FanoutPriority, Manager, config
from asyncfeeds.fanout import create_queue
from asyncfeeds.fanout.queue import queue_settings
from asyncfeeds.storage.redis.connection import close_client, create_client
from asyncfeeds.worker import create_worker

HIGH = FanoutPriority.HIGH
DAY = datetime(2024, 5, 1, tzinfo=UTC)


def post(n: int, actor: int, verb: type = Pin) -> Activity:
    """Activity ``n`` of ``actor``, ``n`` minutes after ``DAY``: a higher ``n`` is newer."""
    return Activity(actor=actor, verb=verb, object=n, time=DAY + timedelta(minutes=n))


class Graph:
    """Who follows whom, as the app's database would keep it."""

    def __init__(self) -> None:
        self.followers: dict[Any, list[Any]] = {}
        self.following: dict[Any, list[Any]] = {}
        self.follower_reads = 0
        self.following_reads = 0

    def follow(self, user: Any, *targets: Any) -> None:
        for target in targets:
            self.followers.setdefault(target, []).append(user)
            self.following.setdefault(user, []).append(target)

    def unfollow(self, user: Any, target: Any) -> None:
        self.followers[target].remove(user)
        self.following[user].remove(target)


def make_manager(backend: Backend, graph: Graph, threshold: int | None, **attrs: Any) -> Any:
    """A manager over fresh flat, aggregated and notification feeds of ``backend``."""
    run = uuid.uuid4().hex[:8]
    attrs.setdefault("feed_classes", {
        "flat": backend.feed("flat", max_length=1000),
        "aggregated": backend.feed("aggregated"),
        "notification": backend.feed("notification"),
    })
    attrs.setdefault("user_feed_class", backend.feed("flat", max_length=1000))
    attrs.setdefault("queue_names", {p: f"t{run}:fanout:{p.value}" for p in FanoutPriority})
    attrs.setdefault("retry_delay", 0.05)
    attrs["pull_threshold"] = threshold

    async def get_user_follower_ids(self: Manager, user_id: Any) -> Any:
        graph.follower_reads += 1
        return {HIGH: list(graph.followers.get(user_id, []))}

    async def get_user_following_ids(self: Manager, user_id: Any) -> Any:
        graph.following_reads += 1
        return list(graph.following.get(user_id, []))

    attrs["get_user_follower_ids"] = get_user_follower_ids
    attrs["get_user_following_ids"] = get_user_following_ids
    return type(f"PullManager{run}", (Manager,), attrs)


async def walk(manager: Manager, reader: Any, limit: int, name: str = "flat") -> list[str]:
    """Every id ``read_feed`` returns, page after page."""
    ids: list[str] = []
    cursor = None
    while True:
        page = await manager.read_feed(reader, name, limit=limit, cursor=cursor)
        ids.extend(a.activity_id for a in page.items)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


async def flat_ids(feed: Any) -> list[str]:
    return [a.activity_id async for a in feed]


async def group_ids(feed: Any) -> set[str]:
    return {a.activity_id for g in await feed[:] for a in g.activities}


# -- crossing the threshold ----------------------------------------------------------------


async def test_an_author_crossing_the_threshold_between_two_posts(backend: Backend) -> None:
    graph = Graph()
    graph.follow(10, 1)
    graph.follow(11, 1)
    manager = make_manager(backend, graph, threshold=2)()
    flat = manager.feed_classes["flat"]
    early = post(1, actor=1)
    await manager.add_user_activity(1, early)  # two followers: pushed
    assert [await flat(u).contains(early) for u in (10, 11)] == [True, True]

    graph.follow(12, 1)  # three followers now: more than the threshold
    await manager.follow_user(12, 1)
    late = post(2, actor=1)
    await manager.add_user_activity(1, late)
    assert await manager.user_feed_class.pulled_among([1, 10]) == [True, False]
    assert [await flat(u).contains(late) for u in (10, 11, 12)] == [False, False, False]
    for user in (10, 11, 12):  # aggregated and notification feeds are always pushed
        assert late.activity_id in await group_ids(manager.get_feeds(user)["aggregated"])
        assert late.activity_id in await group_ids(manager.get_feeds(user)["notification"])
        # The early post is in the pushed feed AND the author's own feed: merged once.
        assert await walk(manager, user, limit=1) == [late.activity_id, early.activity_id]
        page = await manager.read_feed(user, "flat")
        assert page.items == [late, early] and page.next_cursor is None

    # Once pulled, always pulled: a follower leaving changes nothing for the next post.
    graph.unfollow(12, 1)
    await manager.unfollow_user(12, 1)
    third = post(3, actor=1)
    await manager.add_user_activity(1, third)
    assert not await flat(10).contains(third)
    assert (await manager.read_feed(10, "flat")).items == [third, late, early]


async def test_batch_import_of_a_pulled_author_pushes_only_groups(backend: Backend) -> None:
    graph = Graph()
    graph.follow(10, 1)
    graph.follow(11, 1)
    manager = make_manager(backend, graph, threshold=1)()
    activities = [post(n, actor=1, verb=Like) for n in range(5)]
    await manager.batch_import(1, activities, chunk_size=2)
    assert await manager.get_feeds(10)["flat"].count() == 0
    assert await group_ids(manager.get_feeds(11)["aggregated"]) == {
        a.activity_id for a in activities
    }
    assert (await manager.read_feed(10, "flat")).items == activities[::-1]


async def test_any_user_id_is_its_own_pulled_author(backend: Backend) -> None:
    """Ids with separators, commas or percent signs never stand for another author."""
    graph = Graph()
    odd = ["a,b", "a", "b", "a%2Cb", "x:{y}", 7]
    graph.follow("reader", *odd)
    graph.follow("other", "a,b", "x:{y}")
    manager = make_manager(backend, graph, threshold=1)()
    for n, author in enumerate(odd):
        await manager.add_user_activity(author, post(n, actor=n))
    flags = await manager.user_feed_class.pulled_among([*odd, "7", "x", "y"])
    assert flags == [True, False, False, False, True, False, False, False, False]
    page = await manager.read_feed("reader", "flat")
    assert [a.object_id for a in page.items] == [5, 4, 3, 2, 1, 0]
    assert (await manager.read_feed("other", "flat")).items == [post(4, 4), post(0, 0)]
    await manager.user_feed_class.flush()  # flush() forgets the class's pulled authors
    assert await manager.user_feed_class.pulled_among(["a,b", "x:{y}"]) == [False, False]


async def test_own_feeds_in_another_activity_storage_merge_alike(backend: Backend) -> None:
    """Pushed and own feeds that do not share an activity storage are merged in the client
    (on a single Redis too): the same pages."""
    graph = Graph()
    graph.follow(10, 1, 2)
    graph.follow(11, 1)
    own = backend.feed("flat", max_length=1000, activity_key_prefix=f"t{backend.run_id}:own")
    manager = make_manager(backend, graph, threshold=1, user_feed_class=own)()
    posted = []
    for n in range(9):
        author = 1 + n % 2
        posted.append(post(n, actor=author))
        await manager.add_user_activity(author, posted[-1])
    assert await manager.user_feed_class.pulled_among([1, 2]) == [True, False]
    assert await walk(manager, 10, limit=2) == [a.activity_id for a in reversed(posted)]
    assert (await manager.read_feed(10, "flat", limit=3)).items == posted[:-4:-1]


# -- publishing cost -------------------------------------------------------------------------


async def test_a_pulled_author_publishes_without_reading_followers(
    memory_backend: Backend,
) -> None:
    """With a follower-count hook, a pulled author's post never reads follower ids (flat only)."""
    graph = Graph()
    counts = {1: 10_000_000, 2: 3}

    class Counted(make_manager(memory_backend, graph, threshold=1000,  # type: ignore[misc]
                               feed_classes={"flat": memory_backend.feed()})):
        async def get_user_follower_count(self, user_id: Any) -> int | None:
            return counts.get(user_id)

    manager = Counted()
    writes: list[int] = []
    for n in range(3):
        await manager.add_user_activity(1, post(n, actor=1), progress=writes.append)
    assert graph.follower_reads == 0 and writes == []
    assert await manager.get_user_feed(1).count() == 3
    graph.follow(10, 2)
    await manager.add_user_activity(2, post(9, actor=2))  # three followers: pushed
    assert graph.follower_reads == 1
    assert await manager.get_feeds(10)["flat"].count() == 1

    counts[2] = -1
    with pytest.raises(TypeError, match="non-negative int or None"):
        await manager.add_user_activity(2, post(10, actor=2))


async def test_counting_reads_at_most_threshold_plus_one_ids_once(
    memory_backend: Backend,
) -> None:
    """Without a count hook the ids are counted as they are read, stopping past the threshold;
    the groups still get every follower, from the same single read of the ids."""
    graph = Graph()
    taken: list[int] = []

    def many(count: int) -> Iterator[int]:
        for user_id in range(100, 100 + count):
            taken.append(user_id)
            yield user_id

    async def few() -> AsyncIterator[int]:
        for user_id in (7, 8):
            taken.append(user_id)
            yield user_id

    calls: list[Any] = []

    class Big(make_manager(memory_backend, graph, threshold=50,  # type: ignore[misc]
                           feed_classes={"flat": memory_backend.feed()})):
        async def get_user_follower_ids(self, user_id: Any) -> Any:
            calls.append(user_id)
            if user_id == 2:
                return {HIGH: few()}
            return {HIGH: many(1_000_000 if user_id == 1 else 3000)}

    manager = Big()
    await manager.add_user_activity(1, post(1, actor=1))
    assert len(taken) == 51 and calls == [1]
    await manager.add_user_activity(1, post(2, actor=1))  # pulled already: nothing is read
    assert len(taken) == 51 and calls == [1]

    # With an aggregated feed, the ids read for counting go on to its fanout: read once.
    taken.clear()
    grouped = type("Grouped", (Big,), {"fanout_chunk_size": 1000, "feed_classes": {
        "flat": memory_backend.feed(max_length=10),
        "aggregated": memory_backend.feed("aggregated"),
    }})()
    await grouped.add_user_activity(2, post(3, actor=2))  # 2 followers, async ids: pushed
    assert taken == [7, 8]
    assert await grouped.get_feeds(8)["flat"].count() == 1

    # Counting stops past the threshold; the aggregated fanout goes on from there.
    taken.clear()
    sample = post(4, actor=3, verb=Like)
    await grouped.add_user_activity(3, sample)
    assert taken == list(range(100, 3100))  # every id once, though counting read 51 first
    for user_id in (100, 150, 151, 3099):
        assert sample.activity_id in await group_ids(grouped.get_feeds(user_id)["aggregated"])
        assert await grouped.get_feeds(user_id)["flat"].count() == 0


# -- reading -----------------------------------------------------------------------------------


async def test_a_reader_with_no_pulled_authors_reads_the_pushed_feed(backend: Backend) -> None:
    graph = Graph()
    graph.follow(10, 1, 2)
    manager = make_manager(backend, graph, threshold=100)()
    for n in range(12):
        await manager.add_user_activity(1 + n % 2, post(n, actor=1 + n % 2))
    feed = manager.get_feeds(10)["flat"]
    pages, plain = [], []
    cursor = plain_cursor = None
    while True:
        page = await manager.read_feed(10, "flat", limit=5, cursor=cursor)
        same = await feed.page(5, plain_cursor)
        pages.append(page.items)
        plain.append(same.items)
        assert (page.next_cursor is None) == (same.next_cursor is None)
        if page.next_cursor is None:
            break
        cursor, plain_cursor = page.next_cursor, same.next_cursor
    assert pages == plain and [len(p) for p in pages] == [5, 5, 2]

    # A read_feed cursor is a kind of its own, for its own reader and feed.
    first = await manager.read_feed(10, "flat", limit=5)
    assert first.next_cursor is not None
    with pytest.raises(ValueError, match="merged"):
        await feed.page(5, first.next_cursor)
    plain_first = await feed.page(5)
    with pytest.raises(ValueError, match="flat"):
        await manager.read_feed(10, "flat", cursor=plain_first.next_cursor)
    with pytest.raises(ValueError, match="another feed"):
        await manager.read_feed(11, "flat", cursor=first.next_cursor)
    for bad in ("", "not a cursor", "eyJ4Ijoi", 5):
        with pytest.raises(ValueError):
            await manager.read_feed(10, "flat", cursor=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        await manager.read_feed(10, "flat", limit=0)
    with pytest.raises(ValueError, match="no feed named"):
        await manager.read_feed(10, "nope")
    with pytest.raises(ValueError, match="flat feeds"):
        await manager.read_feed(10, "aggregated")

    # Without a threshold nothing is pulled and the following ids are never asked for.
    always_push = make_manager(backend, graph, threshold=None,
                               feed_classes=manager.feed_classes,
                               user_feed_class=manager.user_feed_class)
    del always_push.get_user_following_ids
    page = await always_push().read_feed(10, "flat", limit=20)
    assert page.items == await feed[:20] and len(page.items) == 12


async def test_a_reader_following_fifty_pulled_authors(backend: Backend) -> None:
    graph = Graph()
    authors = list(range(1, 51))
    graph.follow(10, *authors, 99)
    graph.follow(11, *authors)  # two followers each: more than the threshold
    manager = make_manager(backend, graph, threshold=1)()
    expected = []
    for author in authors:  # three posts each, interleaved in time
        batch = [post(author + 100 * k, actor=author) for k in range(3)]
        await manager.batch_import(author, batch)
        expected.extend(batch)
    pushed = [post(1000 + k, actor=99) for k in (0, 2, 4)]  # 99 has one follower: pushed
    for activity in pushed:
        await manager.add_user_activity(99, activity)
    expected.extend(pushed)
    newest_first = sorted((a.activity_id for a in expected), reverse=True)
    assert await manager.get_feeds(10)["flat"].count() == 3

    page = await manager.read_feed(10, "flat", limit=25)
    assert [a.activity_id for a in page.items] == newest_first[:25]
    assert page.items[0] == pushed[-1]
    assert await walk(manager, 10, limit=40) == newest_first
    assert await walk(manager, 11, limit=7) == [i for i in newest_first if i not in
                                                {a.activity_id for a in pushed}]
    assert await walk(manager, 12, limit=10) == []  # follows nobody


async def test_a_cursor_walk_while_authors_post_returns_each_activity_once(
    backend: Backend,
) -> None:
    graph = Graph()
    graph.follow(10, 1, 2, 3, 4)
    graph.follow(20, 1)
    graph.follow(23, 1)  # 1 has three followers: more than the threshold
    graph.follow(21, 2)
    manager = make_manager(backend, graph, threshold=2)()
    before_crossing = post(0, actor=2)
    await manager.add_user_activity(2, before_crossing)  # 2 pushed, then crosses
    graph.follow(22, 2)
    at_start = [before_crossing]
    for n in range(1, 40):
        author = 1 + n % 4
        activity = post(n, actor=author)
        await manager.add_user_activity(author, activity)
        at_start.append(activity)
    assert await manager.user_feed_class.pulled_among([1, 2, 3, 4]) == [True, True, False, False]

    seen: list[str] = []
    cursor = None
    later = 1000
    while True:
        page = await manager.read_feed(10, "flat", limit=6, cursor=cursor)
        seen.extend(a.activity_id for a in page.items)
        for author in (1, 2, 3, 4):  # everyone posts between two pages
            later += 1
            await manager.add_user_activity(author, post(later, actor=author))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen))
    assert seen == sorted((a.activity_id for a in at_start), reverse=True)
    latest = await manager.read_feed(10, "flat", limit=4)
    assert [a.object_id for a in latest.items] == [later - i for i in range(4)]


# -- round trips on a single Redis, counted on the wire --------------------------------------

traffic: collections.Counter[str] = collections.Counter()


class CountingConnection(redis.asyncio.Connection):
    """A real connection that tallies the packets it sends (one per round trip)."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        traffic["round trips"] += 1
        await super().send_packed_command(command, check_health)


def measured() -> int:
    """Round trips since the last call."""
    count = traffic["round trips"]
    traffic.clear()
    return count


@pytest.mark.parametrize("backend", backends("redis"), indirect=True)
async def test_round_trips_do_not_grow_with_pulled_authors_or_followers(
    backend: Backend,
) -> None:
    config.cached_client(
        "redis", "default", lambda: create_client(REDIS_URL, connection_class=CountingConnection),
        close_client,
    )
    graph = Graph()
    authors = list(range(1, 51))
    graph.follow(5, *authors[:5])
    graph.follow(50, *authors)
    graph.follow(0, 99)

    class Counted(make_manager(backend, graph, threshold=1000,  # type: ignore[misc]
                               feed_classes={"flat": backend.feed(max_length=1000)})):
        async def get_user_follower_count(self, user_id: Any) -> int | None:
            return 5_000_000 if user_id in authors else None

    manager = Counted()
    await manager.add_user_activity(99, post(0, actor=99))  # pushed: 0 follows 99
    await manager.add_user_activity(1, post(1, actor=1))  # pulled from here on
    measured()
    await manager.add_user_activity(1, post(2, actor=1))
    assert measured() == 2  # is 1 pulled? then the author's feed: the audience does not count
    for author in authors:
        await manager.batch_import(author, [post(author * 10 + k, actor=author) for k in (3, 4)])
    for user in (0, 5, 50):
        await manager.get_feeds(user)["flat"].add_many([post(user + 17 * k, actor=99)
                                                        for k in range(30)])
    plain = manager.get_feeds(50)["flat"]
    measured()
    await plain[:25]
    assert measured() == 1
    # read_feed: ONE script call finds the pulled followees, reads the reader's feed and
    # theirs, merges and loads the page's data, however many pulled authors are followed.
    for reader in (0, 5, 50):
        page = await manager.read_feed(reader, "flat", limit=25)
        assert len(page.items) == 25
        assert measured() == 1, reader
        page = await manager.read_feed(reader, "flat", limit=25, cursor=page.next_cursor)
        assert measured() == 1, reader


# -- follow, unfollow, remove ----------------------------------------------------------------


async def test_follow_unfollow_and_remove_of_a_pulled_author(backend: Backend) -> None:
    graph = Graph()
    graph.follow(10, 1)
    graph.follow(11, 1)
    manager = make_manager(backend, graph, threshold=1)()
    old, new = post(1, actor=1, verb=Like), post(2, actor=1, verb=Like)
    await manager.add_user_activity(1, old)  # two followers: pulled from the first post
    await manager.add_user_activity(1, new)
    assert await manager.get_feeds(10)["flat"].count() == 0

    # follow: nothing copied into the flat feed, groups still get the author's activities.
    graph.follow(12, 1)
    await manager.follow_user(12, 1)
    feeds = manager.get_feeds(12)
    assert await feeds["flat"].count() == 0
    assert await group_ids(feeds["aggregated"]) == {old.activity_id, new.activity_id}
    assert (await manager.read_feed(12, "flat")).items == [new, old]

    # A pushed copy from before (say an import), then unfollow: the merge stops at once.
    await feeds["flat"].add(old)
    graph.unfollow(12, 1)
    await manager.unfollow_user(12, 1)
    assert (await manager.read_feed(12, "flat")).items == []
    assert await feeds["flat"].count() == 0
    assert await group_ids(feeds["aggregated"]) == set()

    # remove: out of the author's own feed, the merge, the pushed copies and the groups.
    await manager.get_feeds(11)["flat"].add(new)
    await manager.remove_user_activity(1, new)
    assert not await manager.get_user_feed(1).contains(new)
    assert not await manager.get_feeds(11)["flat"].contains(new)
    for user in (10, 11):
        assert (await manager.read_feed(user, "flat")).items == [old]
        assert await group_ids(manager.get_feeds(user)["aggregated"]) == {old.activity_id}


# -- arq mode ----------------------------------------------------------------------------------


@pytest.fixture
async def queue() -> AsyncIterator[ArqRedis]:
    pool = await create_queue(REDIS_URL)
    try:
        yield pool
    finally:
        await pool.aclose()


async def drain(manager: Manager) -> None:
    """One in-process burst worker on the manager's high queue until it is empty."""
    worker = create_worker(manager, "high", burst=True, poll_delay=0.01, handle_signals=False,
                           redis_settings=queue_settings(REDIS_URL))
    try:
        await worker.async_run()
    finally:
        await worker.close()
    assert worker.jobs_failed == 0


async def test_crossing_the_threshold_in_arq_mode(backend: Backend, queue: ArqRedis) -> None:
    graph = Graph()
    graph.follow(10, 1)
    graph.follow(11, 1)
    manager = make_manager(backend, graph, threshold=2)(queue, import_path="tests:pull-arq")
    early = post(1, actor=1, verb=Like)
    await manager.add_user_activity(1, early)
    await drain(manager)
    graph.follow(12, 1)
    await manager.follow_user(12, 1)
    late = post(2, actor=1, verb=Like)
    await manager.add_user_activity(1, late)
    queued = await queue.zcard(manager.queue_names[HIGH])
    assert queued == 2  # one chunk each for the aggregated and notification feeds
    await drain(manager)
    for user in (10, 11, 12):
        feeds = manager.get_feeds(user)
        assert await flat_ids(feeds["flat"]) == [early.activity_id]
        assert await group_ids(feeds["notification"]) == {early.activity_id, late.activity_id}
        assert await walk(manager, user, limit=1) == [late.activity_id, early.activity_id]
    await manager.remove_user_activity(1, early)
    await drain(manager)
    for user in (10, 11, 12):
        assert await walk(manager, user, limit=5) == [late.activity_id]
        assert await manager.get_feeds(user)["flat"].count() == 0


# -- configuration --------------------------------------------------------------------------------


async def test_misconfiguration_is_refused(memory_backend: Backend) -> None:
    graph = Graph()
    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="pull_threshold"):
            make_manager(memory_backend, graph, threshold=bad)()  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="flat feed"):
        make_manager(memory_backend, graph, threshold=5,
                     user_feed_class=memory_backend.feed("aggregated"))()
    unanswered = make_manager(memory_backend, graph, threshold=5)
    del unanswered.get_user_following_ids
    with pytest.raises(NotImplementedError, match="get_user_following_ids"):
        await unanswered().read_feed(1, "flat")

