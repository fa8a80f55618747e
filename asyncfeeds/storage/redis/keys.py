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

ACTIVITY_SHARDS = 1024
"""Activity hashes per activity-key prefix; the one place it is set (Lua gets it as an argument)."""

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


def counts_channel(feed_key: str) -> str:
    """The pub/sub channel carrying a notification feed's counts."""
    return f"{{{feed_key}}}:counts"


def activity_shard(activity_id: str, shards: int = ACTIVITY_SHARDS) -> int:
    """The shard holding an activity id: its last three hex digits (the id's hash part).

    Lua computes the same (``READ_PAGE``), so one script can read a page of ids
    and their data. A string that is not an activity id lands in shard 0.
    """
    try:
        return int(activity_id[-3:], 16) % shards
    except ValueError:
        return 0


def activity_key(prefix: str, shard: int) -> str:
    """One activity hash; each shard is its own hash tag so shards spread over nodes."""
    return f"{{{prefix}:{shard}}}:activities"


def feed_key_pattern(key_prefix: str) -> str:
    """A SCAN pattern matching every key of every feed whose key starts with ``key_prefix``."""
    return "{" + _GLOB_SPECIAL.sub(r"\\\1", key_prefix) + "*}:*"
