"""Stream Framework names that asyncfeeds replaced: using one raises an error naming the new way.

``Feed`` and ``Manager`` inherit these hints, so code ported from Stream
Framework fails with ``AttributeError: ... in asyncfeeds: <replacement>``
instead of a bare "no attribute". Type checkers do not see the hook, so a
misspelt attribute is still reported by them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

_HYDRATED = "nothing: slices come back hydrated, loaded from the activity storage in one call"
_NO_DENORMALIZED = "await feed.count_unseen() / count_unread(): the storage keeps both counts"
_MARKERS = (
    "nothing: a notification feed keeps each group's seen and read state itself; "
    "use mark_activity / mark_activities / mark_all"
)
_SUBSCRIBE = "async for counts in feed.subscribe() (unseen and unread counts after each change)"
_ARQ = (
    "Manager(queue=arq_pool) enqueues one arq job per chunk on Manager.queue_names[priority]; "
    "override Manager.fanout(feed_class, user_ids, operation, activities) to hook a chunk"
)

FEED_NAMES: Mapping[str, str] = {
    "get_activity_slice": "await feed.get_slice(start, stop), or await feed[start:stop]",
    "hydrate_activities": _HYDRATED,
    "needs_hydration": _HYDRATED,
    "timeline_storage": "feed.get_timeline_storage()",
    "activity_storage": "feed.get_activity_storage()",
    "get_timeline_storage_options": "subclass MemoryFeed, RedisFeed or CassandraFeed",
    "timeline_storage_class": "subclass MemoryFeed, RedisFeed or CassandraFeed",
    "activity_storage_class": "subclass MemoryFeed, RedisFeed or CassandraFeed",
    "timeline_serializer": "activity_class (stored as compact JSON by get_serializer())",
    "activity_serializer": "activity_class (stored as compact JSON by get_serializer())",
    "get_timeline_batch_interface": (
        "nothing: add_many and each fanout chunk are one storage call already"
    ),
    "trim_chance": "nothing: each add trims in the same write (add_many(..., trim=False) skips it)",
    "filtering_supported": "flat feeds always support filter(); aggregated feeds raise ValueError",
    "ordering_supported": "flat feeds always support order_by(); aggregated feeds raise ValueError",
    "on_update_feed": (
        "override add_many / remove_many and call super(), or set asyncfeeds.metrics hooks"
    ),
    "add_many_aggregated": "add_many(activities): the aggregator writes the groups atomically",
    "remove_many_aggregated": "remove_many(activities): emptied groups are deleted atomically",
    "get_denormalized_count": _NO_DENORMALIZED,
    "set_denormalized_count": _NO_DENORMALIZED,
    "denormalize_count": _NO_DENORMALIZED,
    "count_key": _NO_DENORMALIZED,
    "count_format": _NO_DENORMALIZED,
    "lock_key": "nothing: notification writes are atomic, no lock is taken",
    "lock_format": "nothing: notification writes are atomic, no lock is taken",
    "publish_count": _SUBSCRIBE,
    "pubsub_main_channel": _SUBSCRIBE,
    "get_notification_data": _SUBSCRIBE,
    "update_markers": "await feed.mark_activities(aggregated_ids, seen=..., read=...)",
    "feed_markers": _MARKERS,
    "markers_storage_class": _MARKERS,
    "markers_key_format": _MARKERS,
    "markers_max_length": _MARKERS,
    "track_unseen": _MARKERS,
    "track_unread": _MARKERS,
}
"""Stream Framework feed attributes with no asyncfeeds namesake, and what replaces each."""

MANAGER_NAMES: Mapping[str, str] = {
    "update_user_activity": "await manager.update_user_activities([activity])",
    "follow_feed": "await manager.follow_user(user_id, target_id) (fills every feed of the user)",
    "unfollow_feed": "await manager.unfollow_user(user_id, target_id)",
    "get_fanout_task": _ARQ,
    "create_fanout_tasks": _ARQ,
    "priority_fanout_task": _ARQ,
}
"""Stream Framework manager attributes with no asyncfeeds namesake, and what replaces each."""


class _Hints:
    """Turns a missing attribute that Stream Framework had into an error naming its replacement."""

    _stream_framework_names: ClassVar[Mapping[str, str]] = {}

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> NoReturn:
            hint = type(self)._stream_framework_names.get(name)
            if hint is None:
                raise AttributeError(
                    f"{type(self).__name__!r} object has no attribute {name!r}", name=name, obj=self
                )
            raise AttributeError(
                f"{type(self).__name__} has no {name!r} (a Stream Framework name); "
                f"in asyncfeeds: {hint}",
                name=name,
                obj=self,
            )


class FeedNames(_Hints):
    """Base of ``Feed``: Stream Framework's feed names raise with their replacement."""

    _stream_framework_names = FEED_NAMES


class ManagerNames(_Hints):
    """Base of ``Manager``: Stream Framework's manager names raise with their replacement."""

    _stream_framework_names = MANAGER_NAMES


def reject_current_activities(current_activities: Any) -> None:
    """``AggregatedFeed.add_many(current_activities=...)`` cannot be honoured: say why."""
    if current_activities is not None:
        raise TypeError(
            "add_many(current_activities=...) is Stream Framework's; asyncfeeds reads the "
            "newest merge_max_length groups itself, in the same atomic write, so concurrent "
            "writers lose nothing: call add_many(activities) without it"
        )


__all__ = ["FEED_NAMES", "MANAGER_NAMES", "FeedNames", "ManagerNames", "reject_current_activities"]
