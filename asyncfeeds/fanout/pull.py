"""Large accounts: authors with more followers than ``Manager.pull_threshold`` are pulled.

Publishing: an author already recorded as pulled, or whose follower count now
exceeds the threshold (then recorded), is not fanned out to flat follower feeds;
aggregated and notification feeds are always pushed. The count comes from
``Manager.get_user_follower_count`` when it answers, else from reading follower
ids, stopping at ``pull_threshold + 1``: the ids read are handed on to the fanout,
so they are still read once.

Reading: ``read_merged`` merges the reader's pushed flat feed with the own feeds
of the pulled authors the reader follows, by ``activity_id``, newest first.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass
from typing import Any, Protocol

from ..activity import Activity
from ..feeds.aggregated import AggregatedFeed
from ..feeds.base import Feed
from ..keys import encode_user_id
from ..pages import Page, check_limit, decode_cursor, encode_cursor


class Manager(Protocol):
    """What pull needs of ``asyncfeeds.Manager`` (which imports this module, not the reverse)."""

    @property
    def feed_classes(self) -> Mapping[str, type[Feed[Any]]]: ...

    @property
    def user_feed_class(self) -> type[Feed[Any]] | None: ...

    @property
    def pull_threshold(self) -> int | None: ...

    async def get_user_follower_count(self, user_id: Any) -> int | None: ...

    async def get_user_following_ids(self, user_id: Any) -> Any: ...

    async def _follower_groups(self, user_id: Any) -> list[tuple[Any, Any]]: ...

MERGED_KIND = "merged"
"""What cursors of ``read_feed`` say they belong to (never valid for ``Feed.page``)."""

ROWS_WITH_DATA = 10
"""Up to this many pulled feeds are read with their data in the same round trip (where the
backend can); past it, ids only, and the chosen page's data in one more round trip."""

Groups = list[tuple[Any, Any]]
"""Follower ids by priority, as ``Manager._follower_groups`` gives them."""


def is_flat(feed_class: type[Feed]) -> bool:
    """Whether a feed class is a flat timeline (pull applies to these only)."""
    return not issubclass(feed_class, AggregatedFeed)


# -- publishing ------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishPlan:
    """Where one publish fans out to, and the follower groups already read (or None)."""

    feed_classes: Mapping[str, type[Feed]]
    groups: Groups | None = None
    pulled: bool = False


async def plan_publish(manager: Manager, user_id: Any) -> PublishPlan:
    """Decide push or pull for ``user_id`` now; records the author as pulled when they cross.

    Pulled is sticky: an author once pulled stays pulled (their activities since
    live in their own feed only), and is not counted again.
    """
    threshold = manager.pull_threshold
    if threshold is None:
        return PublishPlan(manager.feed_classes)
    user_feed_class = manager.user_feed_class
    assert user_feed_class is not None
    (pulled,) = await user_feed_class.pulled_among([user_id])
    groups = None
    if not pulled:
        count = await manager.get_user_follower_count(user_id)
        if count is None:
            groups = await manager._follower_groups(user_id)
            count, groups = await count_up_to(groups, threshold + 1)
        elif isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise TypeError(
                f"get_user_follower_count must return a non-negative int or None, got {count!r}"
            )
        if count > threshold:
            await user_feed_class.mark_pulled(user_id)
            pulled = True
    if not pulled:
        return PublishPlan(manager.feed_classes, groups)
    pushed = {name: c for name, c in manager.feed_classes.items() if not is_flat(c)}
    return PublishPlan(pushed, groups, pulled=True)


async def count_up_to(groups: Groups, cap: int) -> tuple[int, Groups]:
    """Count follower ids over the groups, reading no more than ``cap`` of them.

    Sized collections are counted by ``len``; other iterables are read until the
    count reaches ``cap``. The groups returned give every id once more, the ones
    read first, so the fanout does not call ``get_user_follower_ids`` again.
    """
    count = 0
    result: Groups = []
    for priority, ids in groups:
        if count >= cap:
            result.append((priority, ids))
        elif isinstance(ids, str | bytes):
            raise TypeError(f"follower ids must be an iterable of ids, got {type(ids).__name__}")
        elif isinstance(ids, Sized) and isinstance(ids, Iterable):
            count += len(ids)
            result.append((priority, ids))
        elif hasattr(ids, "__aiter__"):
            iterator = ids.__aiter__()
            read: list[Any] = []
            try:
                while count < cap:
                    read.append(await iterator.__anext__())
                    count += 1
            except StopAsyncIteration:
                result.append((priority, read))
            else:
                result.append((priority, _resume_async(read, iterator)))
        elif isinstance(ids, Iterable):
            sync_iterator = iter(ids)
            read = []
            for user_id in sync_iterator:
                read.append(user_id)
                count += 1
                if count >= cap:
                    result.append((priority, _resume(read, sync_iterator)))
                    break
            else:
                result.append((priority, read))
        else:
            raise TypeError(f"follower ids must be an iterable of ids, got {type(ids).__name__}")
    return count, result


def _resume(read: list[Any], rest: Iterator[Any]) -> Iterator[Any]:
    yield from read
    yield from rest


async def _resume_async(read: list[Any], rest: Any) -> AsyncIterator[Any]:
    for user_id in read:
        yield user_id
    while True:
        try:
            user_id = await rest.__anext__()
        except StopAsyncIteration:
            return
        yield user_id


# -- reading ---------------------------------------------------------------------------


async def read_merged(
    manager: Manager, user_id: Any, name: str, limit: int, cursor: str | None
) -> Page[Activity]:
    """``Manager.read_feed``: the pushed feed ``name`` merged with the pulled followees.

    Where the backend merges in one round trip (a single Redis) it does. Elsewhere,
    first, together: the pulled authors the reader follows, and the pushed feed's
    newest ``limit + 1`` rows; then the pulled authors' newest ``limit + 1`` rows, all
    in one storage call; last, the data of the chosen rows that came without it.
    """
    feed_class = _flat_feed_class(manager, name)
    limit = check_limit(limit)
    pushed = feed_class(user_id)
    before = None if cursor is None else _position(cursor, pushed.key)
    encoded = await following_ids(manager, user_id)
    following = list(encoded.values())
    author_class = manager.user_feed_class if following else feed_class
    assert author_class is not None
    merged = await feed_class.merge_in_one_read(user_id, author_class, list(encoded), limit, before)
    if merged is not None:
        page_rows, more = merged
        return _page(pushed, await pushed.hydrate(page_rows), page_rows, more)

    source = pushed if before is None else pushed.filter(activity_id__lt=before)
    authors, (pushed_rows,) = await asyncio.gather(
        pulled_among(author_class, following), Feed.newest_rows([source], limit + 1)
    )
    sources: list[Feed] = [source]
    row_lists = [pushed_rows]
    if authors:
        pulled = [author_class(a) for a in authors]
        if before is not None:
            pulled = [feed.filter(activity_id__lt=before) for feed in pulled]
        with_data = len(pulled) <= ROWS_WITH_DATA
        row_lists += await Feed.newest_rows(pulled, limit + 1, with_data=with_data)
        sources += pulled
    rows: dict[str, tuple[int, bytes | None]] = {}
    for index, source_rows in enumerate(row_lists):
        for activity_id, data in source_rows:
            if activity_id not in rows or rows[activity_id][1] is None:
                rows[activity_id] = (index, data)  # the first copy with data wins
    newest = heapq.nlargest(limit + 1, rows)
    chosen = [(i, rows[i][1]) for i in newest[:limit]]
    items = await _hydrate(sources, rows, [i for i, _ in chosen])
    return _page(pushed, items, chosen, len(newest) > limit)


def _page(
    pushed: Feed, items: list[Activity], rows: Sequence[tuple[str, Any]], more: bool
) -> Page[Activity]:
    next_cursor = None
    if more and rows:
        next_cursor = encode_cursor(MERGED_KIND, pushed.key, ["-", rows[-1][0]])
    return Page(items=items, next_cursor=next_cursor)


async def following_ids(manager: Manager, user_id: Any) -> dict[str, Any]:
    """Whom ``user_id`` follows now, each once, by encoded id (none while ``pull_threshold``
    is None)."""
    if manager.pull_threshold is None:
        return {}
    following = manager.get_user_following_ids(user_id)
    if inspect.isawaitable(following):
        following = await following
    if hasattr(following, "__aiter__"):
        found = [author async for author in following]
    elif isinstance(following, Iterable) and not isinstance(following, str | bytes):
        found = list(following)
    else:
        raise TypeError(
            "get_user_following_ids must return an iterable of user ids, "
            f"got {type(following).__name__}"
        )
    return {encode_user_id(author): author for author in found}


async def pulled_among(author_class: type[Feed], authors: Sequence[Any]) -> list[Any]:
    """Those of ``authors`` recorded as pulled (one round trip; none asked for none)."""
    if not authors:
        return []
    flags = await author_class.pulled_among(authors)
    return [author for author, pulled in zip(authors, flags, strict=True) if pulled]


def _flat_feed_class(manager: Manager, name: str) -> type[Feed]:
    if name not in manager.feed_classes:
        raise ValueError(
            f"{type(manager).__name__} has no feed named {name!r}; "
            f"feed_classes has {sorted(manager.feed_classes)}"
        )
    feed_class = manager.feed_classes[name]
    if not is_flat(feed_class):
        raise ValueError(
            f"read_feed merges flat feeds; {name!r} is {feed_class.page_kind} (always pushed): "
            f"read it with manager.get_feeds(user_id)[{name!r}].page()"
        )
    return feed_class


def _position(cursor: str, feed_key: str) -> str:
    position = decode_cursor(cursor, MERGED_KIND, feed_key)
    if len(position) != 2 or position[0] != "-" or not isinstance(position[1], str):
        raise ValueError("malformed read_feed cursor")
    return position[1]


async def _hydrate(
    sources: Sequence[Feed], rows: Mapping[str, tuple[int, bytes | None]], chosen: Sequence[str]
) -> list[Activity]:
    """The chosen activities, decoded; data not read yet is loaded by one call per distinct
    activity storage and class (none when every row came with its data)."""
    by_storage: dict[tuple[Any, ...], tuple[Feed, list[tuple[str, bytes | None]]]] = {}
    for activity_id in chosen:
        index, data = rows[activity_id]
        feed_class = type(sources[index])
        key = (feed_class.activity_storage_identity(), feed_class.activity_class)
        by_storage.setdefault(key, (sources[index], []))[1].append((activity_id, data))
    loaded = await asyncio.gather(*(feed.hydrate(part) for feed, part in by_storage.values()))
    found = {a.activity_id: a for activities in loaded for a in activities}
    return [found[i] for i in chosen if i in found]
