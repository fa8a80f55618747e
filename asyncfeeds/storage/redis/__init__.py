"""The Redis backend: timelines in sorted sets, activities in sharded hashes, groups in Lua.

Works unchanged on Redis Cluster (``redis+cluster://`` URLs): all keys of a feed
share a hash tag.
"""

from .activities import RedisActivityStorage
from .connection import RedisServer, get_server
from .groups import RedisGroupStorage
from .pulled import RedisPulledStorage
from .timelines import RedisTimelineStorage

__all__ = [
    "RedisActivityStorage",
    "RedisGroupStorage",
    "RedisPulledStorage",
    "RedisServer",
    "RedisTimelineStorage",
    "get_server",
]
