"""``Manager``: publishes a user's activities into their followers' feeds, eagerly or via arq.

The user's own feed and the activity storage are written inline; follower
feeds are written in chunks of ``fanout_chunk_size`` users, each chunk one
storage batch through ``Manager.fanout``: written inline in eager mode, up to
``fanout_concurrency`` chunks at once, or ``fanout_chunks_per_job`` chunks to an
arq job on the priority's queue when the manager has a ``queue``.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from itertools import islice
from typing import Any, ClassVar

from arq.connections import ArqRedis

from ..activity import Activity, AggregatedActivity
from ..compat import ManagerNames
from ..feeds.base import Feed
from ..metrics import Metrics, process_metrics
from ..pages import Page
from ..types import Operation, UserId
from ..versions import call_version, current_version, next_version
from . import clock, pull, release
from .inflight import InFlight
from .payload import FanoutJob
from .queue import Enqueuer, json_client, queue_errors

logger = logging.getLogger(__name__)

Encodings = dict[type[Feed[Any]], dict[str, bytes]]
"""Each feed class's encodings of a call's activities, by activity id."""
Progress = Callable[[int], object]
"""Called with how many units were just done: follower feeds for a fanout, activities for
an import. ``tqdm(...).update`` fits."""


class FanoutPriority(StrEnum):
    """Which queue a follower group's fanout goes to."""

    HIGH = "high"
    LOW = "low"


class Manager(ManagerNames):
    """Fans activities out to followers' feeds; subclasses implement ``get_user_follower_ids``."""

    feed_classes: ClassVar[Mapping[str, type[Feed[Any]]]] = {}
    user_feed_class: ClassVar[type[Feed[Any]] | None] = None
    fanout_chunk_size: ClassVar[int] = 100
    fanout_concurrency: ClassVar[int] = 16
    """How many chunks are written at once: by an eager call, and by a worker within a job.
    Each chunk's writes are versioned, so chunks may land in any order."""
    fanout_chunks_per_job: ClassVar[int] = 10
    """How many chunks one arq job carries (the worker writes each as its own batch)."""
    follow_activity_limit: ClassVar[int] = 5000
    queue_names: ClassVar[Mapping[FanoutPriority, str]] = {
        FanoutPriority.HIGH: "asyncfeeds:fanout:high",
        FanoutPriority.LOW: "asyncfeeds:fanout:low",
    }
    activity_chunk_size: ClassVar[int] = 500
    """How many activities one batch write takes when following or unfollowing."""
    max_tries: ClassVar[int] = 5
    """How often a fanout job runs before arq gives up on it."""
    retry_delay: ClassVar[float] = 1.0
    """Seconds before a failed job's second try; doubled for every further try."""
    job_timeout: ClassVar[float] = 300.0
    """Seconds one fanout job may take before it is retried."""
    job_lease: ClassVar[float] = 10.0
    """Seconds after a worker dies before its running job is run again by another worker:
    a running job renews its in-progress mark for this long every third of it."""
    dead_letter_key: ClassVar[str] = "asyncfeeds:fanout:dead"
    """Redis stream (on the queue's Redis) keeping jobs that used up their ``max_tries``."""
    enqueue_concurrency: ClassVar[int] = 32
    """How many jobs are handed to Redis at once."""
    queue_url: ClassVar[str | None] = None
    """Redis URL of the arq queue for workers; None falls back to ``ASYNCFEEDS_QUEUE_URL``."""
    metrics: Metrics = process_metrics
    pull_threshold: ClassVar[int | None] = None
    """Authors with more followers than this are pulled: not fanned out to flat feeds, but
    merged in at read time by ``read_feed``. None (default): always push."""

    def __init__(
        self,
        queue: ArqRedis | None = None,
        *,
        metrics: Metrics | None = None,
        import_path: str | None = None,
    ) -> None:
        self._check_configuration()
        self.queue = queue
        if metrics is not None:
            self.metrics = metrics
        cls = type(self)
        self.import_path = import_path or f"{cls.__module__}:{cls.__qualname__}"

    @classmethod
    def _check_configuration(cls) -> None:
        if not isinstance(cls.feed_classes, Mapping):
            raise TypeError(f"{cls.__name__}.feed_classes must be a dict of name -> feed class")
        for name, feed_class in cls.feed_classes.items():
            if not (isinstance(feed_class, type) and issubclass(feed_class, Feed)):
                raise TypeError(f"{cls.__name__}.feed_classes[{name!r}] is not a feed class")
        if cls.user_feed_class is not None and not (
            isinstance(cls.user_feed_class, type) and issubclass(cls.user_feed_class, Feed)
        ):
            raise TypeError(f"{cls.__name__}.user_feed_class is not a feed class")
        for attr in ("fanout_chunk_size", "fanout_concurrency", "fanout_chunks_per_job",
                     "follow_activity_limit", "activity_chunk_size", "max_tries"):
            value = getattr(cls, attr)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{cls.__name__}.{attr} must be a positive int, got {value!r}")
        threshold = cls.pull_threshold
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
                raise ValueError(
                    f"{cls.__name__}.pull_threshold must be None or an int >= 0, got {threshold!r}"
                )
            if cls.user_feed_class is not None and not pull.is_flat(cls.user_feed_class):
                raise TypeError(
                    f"{cls.__name__}.user_feed_class must be a flat feed when pull_threshold "
                    "is set: read_feed merges the pulled authors' own feeds by activity_id"
                )

    @property
    def queue(self) -> ArqRedis | None:
        """The arq pool fanout jobs go to, or None to fan out inline (eager).

        Settable after construction (say in a FastAPI lifespan): a pool switches the
        manager to arq mode, None back to eager.
        """
        return self._queue

    @queue.setter
    def queue(self, queue: ArqRedis | None) -> None:
        if queue is not None and not hasattr(queue, "connection_pool"):
            raise TypeError(
                "queue must be an arq pool (asyncfeeds.fanout.create_queue or arq.create_pool)"
            )
        self._queue = queue
        self.job_queue: ArqRedis | None = json_client(queue) if queue is not None else None
        """The arq client jobs are enqueued with: the queue's connections, a JSON codec."""

    def __repr__(self) -> str:
        if self._queue is None:
            return f"<{type(self).__name__} eager>"
        options = self._queue.connection_pool.connection_kwargs
        where = options.get("path") or f"{options.get('host')}:{options.get('port')}"
        return f"<{type(self).__name__} arq queue at {where}/{options.get('db', 0)}>"

    # -- what a subclass provides ------------------------------------------------------
    async def get_user_follower_ids(self, user_id: UserId) -> Mapping[Any, Any]:
        """Follower ids of ``user_id`` by priority: ``{FanoutPriority.HIGH: ids, ...}``.

        Ids may be any iterable or async iterable; they are read once, chunk by chunk.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement get_user_follower_ids")

    async def get_user_following_ids(self, user_id: UserId) -> Any:
        """Ids of the users ``user_id`` follows, now (iterable or async iterable).

        Only needed once ``pull_threshold`` is set: ``read_feed`` asks it on every
        read to find the pulled authors to merge, so keep it cheap (cache it).
        """
        raise NotImplementedError(
            f"{type(self).__name__} sets pull_threshold, so it must implement "
            "get_user_following_ids(user_id): read_feed merges the pulled authors a reader follows"
        )

    async def get_user_follower_count(self, user_id: UserId) -> int | None:
        """How many followers ``user_id`` has, or None to count ``get_user_follower_ids``.

        Asked when an author not yet pulled publishes while ``pull_threshold`` is set.
        Answer from a counter you keep and publishing costs the same for any audience;
        with None the ids are read (at most ``pull_threshold + 1`` of them) instead.
        """
        return None

    # -- feeds ---------------------------------------------------------------------------
    def get_feeds(self, user_id: UserId) -> dict[str, Feed[Any]]:
        """The feeds the user's followees fan out to, by name."""
        return {name: feed_class(user_id) for name, feed_class in self.feed_classes.items()}

    def get_user_feed(self, user_id: UserId) -> Feed[Any]:
        """The feed of the user's own activities."""
        if self.user_feed_class is None:
            raise TypeError(f"{type(self).__name__}.user_feed_class is not set")
        return self.user_feed_class(user_id)

    # -- the public hook every chunk goes through ----------------------------------------
    async def fanout(
        self,
        feed_class: type[Feed[Any]],
        user_ids: Sequence[UserId],
        operation: Operation,
        activities: Sequence[Activity | str],
    ) -> int:
        """Apply ``operation`` ("add", "remove"; "update" internally) for a chunk in one batch.

        The writes carry the version of the manager call that made the chunk (set
        around this call, so an override that calls ``super().fanout`` keeps it).
        """
        started = time.perf_counter()
        version = current_version()
        if operation == "add":
            written = await feed_class.fanout_add(
                user_ids, _whole(activities, operation), version, count=False
            )
        elif operation == "remove":
            written = await feed_class.fanout_remove(user_ids, activities, version, count=False)
        elif operation == "update":
            written = await feed_class.fanout_update(
                user_ids, _whole(activities, operation), version
            )
        else:
            raise ValueError(f"fanout operation must be 'add' or 'remove', got {operation!r}")
        elapsed = time.perf_counter() - started
        logger.debug("fanout %s of %d activities to %d %s feeds: %d written in %.4f s",
                     operation, len(activities), len(user_ids), feed_class.__name__, written,
                     elapsed)
        self.metrics.on_fanout(feed_class, operation, len(user_ids), elapsed)
        return written

    async def fanout_chunks(
        self,
        feed_class: type[Feed[Any]],
        user_ids: Sequence[UserId],
        operation: Operation,
        activities: Sequence[Activity | str],
    ) -> int:
        """``fanout`` for the users of a job, ``fanout_chunk_size`` at a time and up to
        ``fanout_concurrency`` chunks at once; how many were written."""
        written = 0

        def count(n: int) -> None:
            nonlocal written
            written += n

        writes = InFlight(self.fanout_concurrency, count)
        for start in range(0, len(user_ids), self.fanout_chunk_size):
            chunk = user_ids[start : start + self.fanout_chunk_size]
            await writes.submit(self.fanout(feed_class, chunk, operation, activities))
        await writes.drain()
        return written

    async def fanout_chunk(
        self,
        feed_class: type[Feed[Any]],
        user_ids: Sequence[UserId],
        operation: Operation,
        activities: Sequence[Activity | str],
    ) -> int:
        """``fanout`` of one chunk; how many feeds it holds (what progress counts)."""
        await self.fanout(feed_class, user_ids, operation, activities)
        return len(user_ids)

    # -- publishing ----------------------------------------------------------------------
    async def add_user_activity(
        self, user_id: UserId, activity: Activity, *, progress: Progress | None = None
    ) -> None:
        """Store the activity, add it to the user's feed and fan it out to every follower feed.

        ``progress`` is called with the number of follower feeds of each chunk once
        written (eager) or queued (arq).
        """
        _check_user_id(user_id)
        checked, encoded = self._validate([activity])
        plan = await pull.plan_publish(self, user_id)
        version = await self._new_version()
        await self._store(encoded, skip_user_feed=True)
        await self.get_user_feed(user_id).add_checked(
            checked, self._own(encoded), version
        )
        await self._fanout_followers(
            user_id, "add", checked, plan.feed_classes, version, progress=progress,
            groups=plan.groups,
        )
        self.metrics.on_activity_published(1)

    async def remove_user_activity(
        self, user_id: UserId, activity: Activity | str, *, progress: Progress | None = None
    ) -> None:
        """Remove the activity from the user's feed and from every follower feed.

        ``progress`` is called as for ``add_user_activity``.
        """
        _check_user_id(user_id)
        if isinstance(activity, str):
            ids = Feed.activity_ids([activity])
        else:
            ids = [a.activity_id for a in self._validate([activity])[0]]
        version = await self._new_version()
        await self.get_user_feed(user_id).remove_versioned(ids, version)
        if self.job_queue is None:
            await self._fanout_followers(
                user_id, "remove", ids, self.feed_classes, version, progress=progress
            )
            await self.release_activity_data(ids)
        else:
            key = release.release_key(version)
            await self._fanout_followers(
                user_id, "remove", ids, self.feed_classes, version, progress=progress,
                release_key=key,
            )
            async with queue_errors(self.queue):
                done = await release.seal(self.job_queue, key)
            if done:
                await self.release_activity_data(ids)
        self.metrics.on_activity_removed(1)

    async def release_activity_data(self, activity_ids: Sequence[str]) -> None:
        """Delete the stored data of removed activities from every activity storage.

        Runs once the removal reached every feed (at the end of an eager removal, or
        when its last job has run), so no feed is left holding an id without data.
        """
        assert self.user_feed_class is not None
        seen = set()
        for feed_class in (self.user_feed_class, *self.feed_classes.values()):
            identity = feed_class.activity_storage_identity()
            if identity not in seen:
                seen.add(identity)
                await feed_class.remove_activities(activity_ids)

    async def update_user_activities(self, activities: Iterable[Activity]) -> None:
        """Replace the stored data of activities (same ids) wherever they are, moving nothing."""
        checked, encoded = self._validate(activities)
        if not checked:
            return
        version = await self._new_version()
        await self._store(encoded, skip_user_feed=False)
        by_actor: dict[UserId, list[Activity]] = {}
        for activity in checked:
            by_actor.setdefault(activity.actor, []).append(activity)
        feed_classes = {n: c for n, c in self.feed_classes.items() if c.holds_copies}
        assert self.user_feed_class is not None
        for actor, own in by_actor.items():
            if self.user_feed_class.holds_copies:
                await self.user_feed_class.fanout_update([actor], own, version)
            if feed_classes:
                await self._fanout_followers(actor, "update", own, feed_classes, version)
        self.metrics.on_activity_updated(len(checked))

    async def batch_import(
        self,
        user_id: UserId,
        activities: Iterable[Activity],
        fanout: bool = True,
        chunk_size: int = 500,
        progress: Progress | None = None,
    ) -> None:
        """Import many activities of one user, oldest first, ``chunk_size`` at a time.

        ``progress`` is called with the number of activities of each chunk once it is
        stored, in the user's feed and fanned out (written or queued).
        """
        _check_user_id(user_id)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
        validated, encoded = self._validate(activities)
        checked = sorted(validated, key=lambda a: a.activity_id)
        user_feed = self.get_user_feed(user_id)
        feed_classes = self.feed_classes
        if fanout and checked:
            feed_classes = (await pull.plan_publish(self, user_id)).feed_classes
        version = await self._new_version()
        for start in range(0, len(checked), chunk_size):
            chunk = checked[start : start + chunk_size]
            ids = [a.activity_id for a in chunk]
            chunk_encoded = {c: {i: data[i] for i in ids} for c, data in encoded.items()}
            await self._store(chunk_encoded, skip_user_feed=True)
            await user_feed.add_checked(chunk, self._own(chunk_encoded), version)
            if fanout:
                await self._fanout_followers(user_id, "add", chunk, feed_classes, version)
            if progress is not None:
                progress(len(chunk))
        if checked:
            self.metrics.on_activity_published(len(checked))

    # -- following -------------------------------------------------------------------------
    async def follow_user(self, user_id: UserId, target_id: UserId) -> None:
        """Copy up to ``follow_activity_limit`` of the target's activities into the user's feeds."""
        await self.follow_many_users(user_id, [target_id])

    async def follow_many_users(self, user_id: UserId, target_ids: Iterable[UserId]) -> None:
        """Copy up to ``follow_activity_limit`` activities of each target into the user's feeds."""
        _check_user_id(user_id)
        targets = _check_user_ids(target_ids)
        pulled = await self._pulled_targets(targets)
        pushed = await self._target_activities([t for t in targets if t not in pulled])
        everything = pushed  # aggregated and notification feeds get the pulled authors' too
        if pulled:
            found = {a.activity_id: a for a in (*pushed, *await self._target_activities(pulled))}
            everything = [found[i] for i in sorted(found)]
        with call_version(await self._new_version()):
            for feed_class in self.feed_classes.values():
                copied = pushed if pull.is_flat(feed_class) else everything
                for start in range(0, len(copied), self.activity_chunk_size):
                    chunk = copied[start : start + self.activity_chunk_size]
                    await self.fanout(feed_class, [user_id], "add", chunk)
        self.metrics.on_follow(len(targets))

    async def unfollow_user(self, user_id: UserId, target_id: UserId) -> None:
        """Remove every activity of the target from the user's feeds."""
        await self.unfollow_many_users(user_id, [target_id])

    async def unfollow_many_users(self, user_id: UserId, target_ids: Iterable[UserId]) -> None:
        """Remove every activity of the targets (by actor, at any feed size) from the user's feeds.

        Each feed is searched for the targets' activities, also those no longer in
        the targets' own feeds; the removals go through ``fanout`` in chunks.
        """
        _check_user_id(user_id)
        targets = _check_user_ids(target_ids)
        with call_version(await self._new_version()):
            for feed_class in self.feed_classes.values():
                ids = await feed_class(user_id).activity_ids_of(targets)
                for start in range(0, len(ids), self.activity_chunk_size):
                    chunk = ids[start : start + self.activity_chunk_size]
                    await self.fanout(feed_class, [user_id], "remove", chunk)
        self.metrics.on_unfollow(len(targets))

    async def _pulled_targets(self, targets: Sequence[UserId]) -> list[UserId]:
        """The targets recorded as pulled (none while ``pull_threshold`` is None)."""
        if self.pull_threshold is None or not targets:
            return []
        assert self.user_feed_class is not None
        flags = await self.user_feed_class.pulled_among(targets)
        return [t for t, pulled in zip(targets, flags, strict=True) if pulled]

    # -- reading with pulled authors -------------------------------------------------------
    async def read_feed(
        self, user_id: UserId, name: str, limit: int = 25, cursor: str | None = None
    ) -> Page[Activity]:
        """A page of the flat feed ``name`` merged with the own feeds of the pulled authors
        ``user_id`` follows, newest first, no duplicates; ``cursor`` continues a walk."""
        _check_user_id(user_id)
        return await pull.read_merged(self, user_id, name, limit, cursor)

    async def _target_activities(self, targets: Sequence[UserId]) -> list[Activity]:
        """The newest activities of each target's own feed, merged oldest first."""
        found: dict[str, Activity] = {}
        for target in targets:
            for item in await self.get_user_feed(target)[: self.follow_activity_limit]:
                items = item.activities if isinstance(item, AggregatedActivity) else [item]
                for activity in items:
                    found[activity.activity_id] = activity
        return [found[i] for i in sorted(found)]

    # -- internals ---------------------------------------------------------------------------
    async def _new_version(self) -> int:
        """The version of a new call: from the queue's Redis in arq mode, else this process."""
        if self.job_queue is None:
            return next_version()
        async with queue_errors(self.job_queue):
            return await clock.next_version(self.job_queue)

    def _validate(self, activities: Iterable[Activity]) -> tuple[list[Activity], Encodings]:
        """The one check of a call, before any write: every activity must suit the user feed
        and every follower feed; returns them with each feed class's encodings.

        Wrong classes raise ``TypeError``; an activity too large for one of the
        feeds raises ``ValueError`` naming the limit.
        """
        if self.user_feed_class is None:
            raise TypeError(f"{type(self).__name__}.user_feed_class is not set")
        checked, own = self.user_feed_class.prepare(activities)
        encoded: Encodings = {self.user_feed_class: own}
        for feed_class in self.feed_classes.values():
            if feed_class not in encoded:
                encoded[feed_class] = feed_class.prepare(checked)[1]
        return checked, encoded

    def _own(self, encoded: Encodings) -> dict[str, bytes]:
        assert self.user_feed_class is not None
        return encoded[self.user_feed_class]

    async def _store(self, encoded: Encodings, *, skip_user_feed: bool) -> None:
        """Write the activities once into each distinct activity storage the feeds read.

        With ``skip_user_feed`` the user feed's storage is left out: writing the
        user's own feed stores the data there in the same round trip.
        """
        assert self.user_feed_class is not None
        seen = set()
        if skip_user_feed:
            seen.add(self.user_feed_class.activity_storage_identity())
        for feed_class, data in encoded.items():
            identity = feed_class.activity_storage_identity()
            if identity not in seen:
                seen.add(identity)
                await feed_class.store_encoded(data)

    async def _fanout_followers(
        self,
        user_id: UserId,
        operation: Operation,
        activities: Sequence[Activity | str],
        feed_classes: Mapping[str, type[Feed[Any]]],
        version: int,
        *,
        progress: Progress | None = None,
        release_key: str | None = None,
        groups: list[tuple[FanoutPriority, Any]] | None = None,
    ) -> None:
        """Chunk the followers of every priority and run or enqueue one job per chunk and class.

        ``groups``: the follower ids when the caller has read them already.
        """
        if not activities or not feed_classes:
            return
        if groups is None:
            groups = await self._follower_groups(user_id)
        for priority, follower_ids in groups:
            if self.job_queue is None:
                writes = InFlight(self.fanout_concurrency, progress)
                with call_version(version):
                    async for chunk in _chunks(follower_ids, self.fanout_chunk_size):
                        for feed_class in feed_classes.values():
                            await writes.submit(
                                self.fanout_chunk(feed_class, chunk, operation, activities)
                            )
                    await writes.drain()
                continue
            enqueuer = Enqueuer(self.job_queue, self.queue_names[priority],
                                self.enqueue_concurrency, progress)
            job_size = self.fanout_chunk_size * self.fanout_chunks_per_job
            async for chunk in _chunks(follower_ids, job_size):
                for name, feed_class in feed_classes.items():
                    job = FanoutJob(
                        self.import_path, name, operation, chunk, activities, version,
                        release_key,
                    )
                    await enqueuer.submit(job, feed_class)
            await enqueuer.flush()
            if enqueuer.enqueued or enqueuer.duplicates:
                self.metrics.on_jobs_enqueued(priority.value, enqueuer.enqueued,
                                              enqueuer.duplicates)

    async def _follower_groups(self, user_id: UserId) -> list[tuple[FanoutPriority, Any]]:
        result: object = self.get_user_follower_ids(user_id)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, Mapping):
            raise TypeError(
                "get_user_follower_ids must return {FanoutPriority: ids}, "
                f"got {type(result).__name__}"
            )
        groups = []
        for key, ids in result.items():
            try:
                priority = FanoutPriority(key.lower() if isinstance(key, str) else key)
            except ValueError:
                raise ValueError(
                    f"unknown fanout priority {key!r}; use FanoutPriority.HIGH or .LOW"
                ) from None
            if ids is not None:
                groups.append((priority, ids))
        return groups


async def _chunks(ids: Any, size: int) -> AsyncIterator[list[UserId]]:
    """Lists of at most ``size`` ids from an iterable or async iterable, read lazily."""
    if hasattr(ids, "__aiter__"):
        chunk: list[UserId] = []
        async for user_id in ids:
            chunk.append(_check_user_id(user_id))
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        return
    if isinstance(ids, str | bytes) or not isinstance(ids, Iterable):
        raise TypeError(f"follower ids must be an iterable of ids, got {type(ids).__name__}")
    remaining = iter(ids)
    while chunk := list(islice(remaining, size)):
        if not _PLAIN_IDS.issuperset(map(type, chunk)):
            for user_id in chunk:
                _check_user_id(user_id)
        yield chunk


def _whole(activities: Sequence[Activity | str], operation: Operation) -> list[Activity]:
    """The activities of an add or update, which carry their data: ids alone raise."""
    for item in activities:
        if not isinstance(item, Activity):
            raise TypeError(f"fanout {operation!r} takes activities, got {type(item).__name__}")
    return [a for a in activities if isinstance(a, Activity)]


_PLAIN_IDS = frozenset({int, str})
"""Types of user ids that need no further check (a bool, or a subclass, is checked)."""


def _check_user_id(user_id: Any) -> UserId:
    if isinstance(user_id, bool) or not isinstance(user_id, int | str):
        raise TypeError(f"user ids must be ints or strs, got {user_id!r}")
    return user_id


def _check_user_ids(user_ids: Iterable[UserId]) -> list[UserId]:
    if isinstance(user_ids, str | bytes) or not isinstance(user_ids, Iterable):
        raise TypeError(f"expected an iterable of user ids, got {user_ids!r}")
    return [_check_user_id(u) for u in user_ids]
