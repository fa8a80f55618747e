"""asyncfeeds: asyncio-native activity feeds on memory, Redis or Cassandra, fanned out by arq."""

from .activity import Activity, AggregatedActivity, NotificationActivity
from .aggregators import BaseAggregator, NotificationAggregator, RecentVerbAggregator
from .config import aclose, configure
from .exceptions import (
    ActivityNotFoundError,
    AsyncFeedsError,
    DuplicateActivityError,
    SerializationError,
    StorageUnavailableError,
)
from .fanout.manager import FanoutPriority, Manager
from .feeds.aggregated import AggregatedFeed
from .feeds.base import Feed
from .feeds.cassandra import CassandraAggregatedFeed, CassandraFeed, CassandraNotificationFeed
from .feeds.memory import MemoryAggregatedFeed, MemoryFeed, MemoryNotificationFeed
from .feeds.notification import NotificationFeed
from .feeds.redis import RedisAggregatedFeed, RedisFeed, RedisNotificationFeed
from .health import ping
from .pages import Page
from .provision import setup
from .types import Counts, Subscription
from .verbs import Verb, get_verb_by_id, register, register_verb

__version__ = "0.1.0"
"""The release; the package metadata reads it from here (``pyproject.toml``: dynamic)."""

__all__ = [
    "Activity",
    "ActivityNotFoundError",
    "AggregatedActivity",
    "AggregatedFeed",
    "AsyncFeedsError",
    "BaseAggregator",
    "CassandraAggregatedFeed",
    "CassandraFeed",
    "CassandraNotificationFeed",
    "Counts",
    "DuplicateActivityError",
    "FanoutPriority",
    "Feed",
    "Manager",
    "MemoryAggregatedFeed",
    "MemoryFeed",
    "MemoryNotificationFeed",
    "NotificationActivity",
    "NotificationAggregator",
    "NotificationFeed",
    "Page",
    "RecentVerbAggregator",
    "RedisAggregatedFeed",
    "RedisFeed",
    "RedisNotificationFeed",
    "SerializationError",
    "StorageUnavailableError",
    "Subscription",
    "Verb",
    "__version__",
    "aclose",
    "configure",
    "get_verb_by_id",
    "ping",
    "register",
    "register_verb",
    "setup",
]
