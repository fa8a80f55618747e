"""Redis key names. Every key of one feed carries the feed key as its hash tag.

So a feed's keys live in one cluster slot (a Lua script may touch them all),
while different feeds and activity shards spread over the cluster.
"""

from __future__ import annotations

import re

TIMELINE_SUFFIXES = ("tl", "tv", "tr")
"""Keys of one flat feed: the ids, their versions and the remembered removals."""

GROUP_SUFFIXES = ("scores", "groups", "v", "unseen", "unread", "gx", "gr")
"""Keys of one aggregated feed, in the order the Lua scripts take them."""

ACTIVITY_BUCKET_DIGITS = 8
"""Leading digits of an activity id naming its time bucket: 10**10 µs, about 2 h 47 min."""

ACTIVITY_SHARDS = 8
"""Activity hashes per time bucket, so one bucket's writes spread over up to 8 cluster nodes
(few enough that the per-key overhead stays small); the one place it is set (Lua gets it
as an argument)."""

_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")


def timeline_key(feed_key: str) -> str:
    """The sorted set of a flat feed."""
    return f"{{{feed_key}}}:tl"


def timeline_keys(feed_key: str) -> list[str]:
    """The keys of a flat feed: ids, versions, removals."""
    return [f"{{{feed_key}}}:{suffix}" for suffix in TIMELINE_SUFFIXES]


def group_keys(feed_key: str) -> list[str]:
    """The keys of an aggregated feed: scores, groups, version, unseen, unread, index,
    removals."""
    return [f"{{{feed_key}}}:{suffix}" for suffix in GROUP_SUFFIXES]


def feed_key_of(redis_key: str, suffixes: tuple[str, ...]) -> str | None:
    """The feed key inside one of its Redis keys ending in one of ``suffixes``, else None."""
    if not redis_key.startswith("{"):
        return None
    feed_key, _, suffix = redis_key[1:].rpartition("}:")
    return feed_key if feed_key and suffix in suffixes else None


def pulled_key(scope: str) -> str:
    """The set of pulled authors of a user-feed class (``KeyFormat.scope``), one hash tag."""
    return f"{{{scope}}}:pulled"


def counts_channel(feed_key: str) -> str:
    """The pub/sub channel carrying a notification feed's counts."""
    return f"{{{feed_key}}}:counts"


def activity_shard(activity_id: str, shards: int = ACTIVITY_SHARDS) -> int:
    """The shard of an activity id within its bucket: its last three hex digits (the hash).

    Lua computes the same (``activity_hashes`` in the scripts), so one script can
    read a page of ids and their data. A string that is not an activity id lands
    in shard 0.
    """
    try:
        return int(activity_id[-3:], 16) % shards
    except ValueError:
        return 0


def activity_bucket(activity_id: str) -> str:
    """The time bucket of an activity id: its leading digits."""
    return activity_id[:ACTIVITY_BUCKET_DIGITS]


def bucket_end(bucket: str) -> int | None:
    """Epoch seconds at which a time bucket ends (``None`` for a non-activity id)."""
    if len(bucket) != ACTIVITY_BUCKET_DIGITS or not bucket.isdigit():
        return None
    return (int(bucket) + 1) * 10**10 // 10**6


def activity_tag(prefix: str) -> str:
    """The start of every activity hash name of a prefix (the Lua scripts extend it)."""
    return "{" + prefix + ":"


def activity_key(prefix: str, activity_id: str) -> str:
    """The hash holding one activity's data: its own hash tag per bucket and shard."""
    return f"{activity_tag(prefix)}{activity_bucket(activity_id)}:{activity_shard(activity_id)}}}:a"


def refcount_key(activity_data_key: str) -> str:
    """The hash counting the timelines that hold each activity of a data hash."""
    return activity_data_key[:-1] + "r"


def activity_key_pattern(prefix: str) -> str:
    """A SCAN pattern for the activity hashes of a prefix (and, unescaped, of longer ones)."""
    return _GLOB_SPECIAL.sub(r"\\\1", activity_tag(prefix)) + "*}:[ar]"


def feed_key_pattern(key_prefix: str) -> str:
    """A SCAN pattern matching every key of every feed whose key starts with ``key_prefix``."""
    return "{" + _GLOB_SPECIAL.sub(r"\\\1", key_prefix) + "*}:*"
