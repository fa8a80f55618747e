"""Exactness over every delivery of a load run, read back through the public feed API.

From the ledger (every post and like the app was asked for) and the follow
graph, the checker knows what each feed must hold: every post in each of its
author's followers' flat and aggregated feeds and in the author's own feed,
every like counted once in the liked author's notification feed. It first
completes what a failed request left half done (the same call again, as a
client retrying a 503 would), then reads every feed of every user.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import feeds
import graph
import ledger

CONCURRENCY = 16


@dataclass
class Delivery:
    """Lost, doubled and unexpected items of one kind of feed, summed over feeds."""

    feeds: int = 0
    expected: int = 0
    found: int = 0
    lost: int = 0
    doubled: int = 0
    unexpected: int = 0
    at_max_length: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.doubled or self.unexpected)

    def note(self, text: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(text)


@dataclass
class Badges:
    """Notification feeds whose unseen/unread counts disagree with their groups' flags."""

    feeds: int = 0
    unseen_total: int = 0
    unseen_mismatches: int = 0
    unread_mismatches: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.unseen_mismatches or self.unread_mismatches)


@dataclass
class Exactness:
    """The whole report: every figure the runner prints and the smoke test checks."""

    posts: int = 0
    likes: int = 0
    posts_retried: int = 0
    likes_retried: int = 0
    flat: Delivery = field(default_factory=Delivery)
    aggregated: Delivery = field(default_factory=Delivery)
    user_feeds: Delivery = field(default_factory=Delivery)
    notifications: Delivery = field(default_factory=Delivery)
    badges: Badges = field(default_factory=Badges)
    dead_letters: int = 0
    left_in_queues: int = 0

    @property
    def clean(self) -> bool:
        parts = (self.flat, self.aggregated, self.user_feeds, self.notifications, self.badges)
        return all(p.clean for p in parts) and not self.dead_letters and not self.left_in_queues

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "clean": self.clean}


async def complete_failed(redis: Any) -> tuple[int, int]:
    """Retry every post and like whose request failed; how many of each."""
    posts = [e for e in (await ledger.entries(redis, ledger.POSTS)).values() if not e.done]
    for entry in posts:
        await feeds.manager.add_user_activity(entry.owner, entry.activity)
        await ledger.finish(redis, ledger.POSTS, entry.activity.activity_id)
    likes = [e for e in (await ledger.entries(redis, ledger.LIKES)).values() if not e.done]
    for entry in likes:
        await feeds.NotificationFeed(entry.owner).add(entry.activity)
        await ledger.finish(redis, ledger.LIKES, entry.activity.activity_id)
    return len(posts), len(likes)


async def check(redis: Any, report: Exactness) -> Exactness:
    """Fill ``report`` with what every feed holds against what it must hold."""
    follow = graph.current()
    posts = await ledger.entries(redis, ledger.POSTS)
    likes = await ledger.entries(redis, ledger.LIKES)
    report.posts, report.likes = len(posts), len(likes)

    by_author: dict[int, set[str]] = {u: set() for u in follow.users}
    for activity_id, entry in posts.items():
        by_author[entry.owner].add(activity_id)
    received: dict[int, set[str]] = {u: set() for u in follow.users}
    for author, ids in by_author.items():
        for follower in follow.followers(author):
            received[follower] |= ids
    liked: dict[int, set[str]] = {u: set() for u in follow.users}
    for activity_id, entry in likes.items():
        liked[entry.owner].add(activity_id)

    users = list(follow.users)
    await _each(users, lambda u: _flat(feeds.FlatFeed(u), received[u], report.flat))
    await _each(users, lambda u: _flat(feeds.UserFeed(u), by_author[u], report.user_feeds))
    await _each(users, lambda u: _aggregated(feeds.AggregatedFeed(u), received[u],
                                             report.aggregated))
    await _each(users, lambda u: _notifications(u, liked[u], report))
    return report


async def _each(users: Iterable[int], check_one: Callable[[int], Awaitable[None]]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(user: int) -> None:
        async with gate:
            await check_one(user)

    await asyncio.gather(*(one(u) for u in users))


async def _flat(feed: Any, expected: set[str], tally: Delivery) -> None:
    """A flat feed must hold the newest ``max_length`` of its expected ids, each once."""
    held = [a async for a in feed]
    ids = Counter(a.activity_id for a in held)
    objects = Counter(a.object for a in held)
    kept = set(sorted(expected, reverse=True)[: feed.max_length])
    tally.feeds += 1
    tally.expected += len(kept)
    tally.found += len(held)
    tally.at_max_length += len(held) >= feed.max_length
    lost = kept - set(ids)
    doubled = sum(n - 1 for n in ids.values()) + sum(n - 1 for n in objects.values())
    unexpected = set(ids) - expected
    tally.lost += len(lost)
    tally.doubled += doubled
    tally.unexpected += len(unexpected)
    if lost or doubled or unexpected:
        tally.note(f"{feed.key}: {len(lost)} lost, {doubled} doubled, {len(unexpected)} unexpected")


async def _aggregated(feed: Any, expected: set[str], tally: Delivery) -> None:
    _count_groups(feed, [g async for g in feed], expected, tally)


def _count_groups(feed: Any, groups: list[Any], expected: set[str], tally: Delivery) -> None:
    """The groups' activity counts must add up to the expected activities, each counted once."""
    total = sum(g.activity_count for g in groups)
    shown = Counter(a.activity_id for g in groups for a in g.activities)
    unexpected = set(shown) - expected
    doubled = max(0, total - len(expected)) + sum(n - 1 for n in shown.values())
    lost = max(0, len(expected) - total)
    tally.feeds += 1
    tally.expected += len(expected)
    tally.found += total
    tally.at_max_length += len(groups) >= feed.max_length
    tally.lost += lost
    tally.doubled += doubled
    tally.unexpected += len(unexpected)
    if lost or doubled or unexpected:
        tally.note(f"{feed.key}: {total} counted for {len(expected)} expected, "
                   f"{len(unexpected)} unexpected shown")


async def _notifications(user: int, expected: set[str], report: Exactness) -> None:
    """Likes counted exactly once, and the badge counts equal to the groups' flags."""
    feed = feeds.NotificationFeed(user)
    groups = [g async for g in feed]
    _count_groups(feed, groups, expected, report.notifications)
    unseen, unread = await feed.count_unseen(), await feed.count_unread()
    flagged_unseen = sum(not g.is_seen for g in groups)
    flagged_unread = sum(not g.is_read for g in groups)
    badges = report.badges
    badges.feeds += 1
    badges.unseen_total += unseen
    if unseen != flagged_unseen:
        badges.unseen_mismatches += 1
    if unread != flagged_unread:
        badges.unread_mismatches += 1
    if (unseen, unread) != (flagged_unseen, flagged_unread) and len(badges.examples) < 5:
        badges.examples.append(f"{feed.key}: badge {unseen}/{unread} unseen/unread, "
                               f"flags {flagged_unseen}/{flagged_unread}")


async def damage(redis: Any) -> dict[str, int]:
    """Spoil one delivery of each kind, so a second check proves the checker sees it:
    a post taken from a follower's flat and aggregated feeds, a copy of a post (same
    pin, other id) added to another follower's flat feed, a like taken from its
    notification feed. Returns what the second check must find."""
    follow = graph.current()
    posts = await ledger.entries(redis, ledger.POSTS)
    likes = await ledger.entries(redis, ledger.LIKES)
    post_id, post = next(iter(sorted(posts.items())))
    first, second = follow.followers(post.owner)[:2]
    await feeds.FlatFeed(first).remove(post_id)
    await feeds.AggregatedFeed(first).remove_many([post.activity])
    copy = post.activity.model_copy(update={"time": post.activity.time.replace(year=2001)})
    await feeds.FlatFeed(second).add(copy)
    expected = {"flat_lost": 1, "flat_doubled": 1, "flat_unexpected": 1, "aggregated_lost": 1,
                "notifications_lost": 0}
    if likes:
        like = next(iter(sorted(likes.values(), key=lambda e: e.activity.activity_id)))
        await feeds.NotificationFeed(like.owner).remove_many([like.activity])
        expected["notifications_lost"] = 1
    return expected


def damage_found(report: Exactness) -> dict[str, int]:
    """The figures of a report that ``damage`` is expected to move."""
    return {"flat_lost": report.flat.lost, "flat_doubled": report.flat.doubled,
            "flat_unexpected": report.flat.unexpected, "aggregated_lost": report.aggregated.lost,
            "notifications_lost": report.notifications.lost}
