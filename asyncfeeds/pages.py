"""``Page[T]`` and the opaque cursors that continue a walk through a feed.

A cursor is URL-safe base64 of a small JSON document naming the kind of feed
it belongs to, a fingerprint of the feed, and where the last page ended. A
cursor from another kind of feed, another feed, or no cursor at all raises
``ValueError``: it can never read another feed's data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel

ItemT = TypeVar("ItemT")

MAX_LIMIT = 1000
"""The largest page a feed returns at once."""


class Page(BaseModel, Generic[ItemT]):
    """Items of a feed, newest first, and the cursor of the next page (``None``: the end)."""

    items: list[ItemT]
    next_cursor: str | None = None


def check_limit(limit: object) -> int:
    """``limit`` if it is an int from 1 to ``MAX_LIMIT``; ``ValueError`` otherwise."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be an int from 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


def fingerprint(feed_key: str) -> str:
    """A short, stable digest of a feed key, so a cursor only continues its own feed."""
    return hashlib.blake2b(feed_key.encode(), digest_size=6).hexdigest()


def encode_cursor(kind: str, feed_key: str, position: list[Any]) -> str:
    """The opaque cursor continuing after ``position`` in the feed ``feed_key`` of ``kind``."""
    document = orjson.dumps([kind, fingerprint(feed_key), position])
    return base64.urlsafe_b64encode(document).decode().rstrip("=")


def decode_cursor(cursor: object, kind: str, feed_key: str) -> list[Any]:
    """The position inside a cursor made by ``encode_cursor`` for this feed; ``ValueError``."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > 4096:
        raise ValueError("malformed cursor: expected a cursor string from a previous page")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        found_kind, found_feed, position = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError(f"malformed cursor {cursor[:40]!r}") from exc
    if found_kind != kind:
        raise ValueError(f"this cursor belongs to a {found_kind!r} feed, not a {kind!r} feed")
    if found_feed != fingerprint(feed_key) or not isinstance(position, list):
        raise ValueError("this cursor belongs to another feed")
    return position


__all__ = ["MAX_LIMIT", "Page", "check_limit", "decode_cursor", "encode_cursor"]
