"""The Cassandra backend through acsylla: denormalised timelines, one-row aggregated feeds."""

from .activities import CassandraActivityStorage
from .connection import CassandraClient, get_client
from .groups import CassandraGroupStorage
from .timelines import CassandraTimelineStorage

__all__ = [
    "CassandraActivityStorage",
    "CassandraClient",
    "CassandraGroupStorage",
    "CassandraTimelineStorage",
    "get_client",
]
