"""Errors raised by asyncfeeds; every one derives from AsyncFeedsError."""


class AsyncFeedsError(Exception):
    """Base class of every asyncfeeds error."""


class SerializationError(AsyncFeedsError, ValueError):
    """Stored or received data could not be decoded into activities."""


class DuplicateActivityError(AsyncFeedsError, ValueError):
    """An aggregated activity already holds this activity."""


class ActivityNotFoundError(AsyncFeedsError, LookupError):
    """An aggregated activity does not hold this activity."""


class StorageUnavailableError(AsyncFeedsError, ConnectionError):
    """A storage server could not be reached; the message names host and port."""


class ConcurrentUpdateError(AsyncFeedsError):
    """An optimistic read-modify-write kept losing to concurrent writers."""
