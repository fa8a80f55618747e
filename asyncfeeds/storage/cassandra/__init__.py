"""The Cassandra backend through acsylla: id timelines, hourly activities, one-row groups."""

from .activities import CassandraActivityStorage
from .connection import CassandraClient, get_client
from .groups import CassandraGroupStorage
from .pulled import CassandraPulledStorage
from .timelines import CassandraTimelineStorage

__all__ = [
    "CassandraActivityStorage",
    "CassandraClient",
    "CassandraGroupStorage",
    "CassandraPulledStorage",
    "CassandraTimelineStorage",
    "get_client",
]
