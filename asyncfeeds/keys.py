"""Feed keys: the ``key_format`` rule and a user-id encoding no id can escape.

A feed key is ``key_format`` with ``{user_id}`` replaced by the encoded id. The
encoding keeps ``[A-Za-z0-9-]`` and percent-encodes every other character
(UTF-8), so the id part of a key never holds a separator. ``key_format`` must
put a separator (any other character, such as ``:`` or ``_``) or the string's
edge on both sides of ``{user_id}``. Together these make keys injective across
users and across classes with different formats: no user id, whatever its
characters, names a key of another user or of another feed class, and a
class's keys can be told from every other class's by their shape alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

PLACEHOLDER = "{user_id}"
MAX_USER_ID_LENGTH = 256
"""Characters a user id may have (before encoding)."""

_KEPT = re.compile(r"[A-Za-z0-9\-]")
_ESCAPED = re.compile(r"[^A-Za-z0-9\-]")
_ENCODED_ID = r"[A-Za-z0-9%\-]+"


def encode_user_id(user_id: int | str) -> str:
    """The key part of a user id: ``13`` and ``"13"`` give ``13``; ``"a:b"`` gives ``a%3Ab``."""
    if type(user_id) is int:  # the common case: digits and "-" are kept as they are
        text = str(user_id)
        if len(text) > MAX_USER_ID_LENGTH:
            raise ValueError(f"user_id is longer than {MAX_USER_ID_LENGTH} characters")
        return text
    if isinstance(user_id, bool) or not isinstance(user_id, int | str):
        raise TypeError(f"user_id must be an int or str, got {user_id!r}")
    text = str(user_id)
    if not text:
        raise ValueError("user_id must not be empty")
    if len(text) > MAX_USER_ID_LENGTH:
        raise ValueError(f"user_id is longer than {MAX_USER_ID_LENGTH} characters")
    return _ESCAPED.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), text)


@dataclass(frozen=True, slots=True)
class KeyFormat:
    """A checked ``key_format``: the literal text before and after ``{user_id}``."""

    prefix: str
    suffix: str

    @classmethod
    def parse(cls, key_format: object, owner: str) -> KeyFormat:
        """Check ``key_format``; ``TypeError`` with the expected form if it is not usable."""
        if isinstance(key_format, str):
            return _parse(key_format, owner)
        return cls._parse(key_format, owner)

    @classmethod
    def _parse(cls, key_format: object, owner: str) -> KeyFormat:
        expected = f'expected a str holding {PLACEHOLDER} exactly once, such as "feed:{{user_id}}"'
        if not isinstance(key_format, str):
            raise TypeError(f"{owner}.key_format must be a str: {expected}")
        if "%(user_id)" in key_format:
            raise TypeError(
                f"{owner}.key_format {key_format!r} is Stream Framework's %-style; asyncfeeds "
                f"writes it {key_format.replace('%(user_id)s', PLACEHOLDER)!r}: {expected}"
            )
        if key_format.count(PLACEHOLDER) != 1:
            raise TypeError(f"{owner}.key_format {key_format!r}: {expected}")
        prefix, suffix = key_format.split(PLACEHOLDER)
        if any(c in "{}" for c in prefix + suffix):
            raise TypeError(
                f"{owner}.key_format {key_format!r} may hold no braces besides {PLACEHOLDER}: "
                f"{expected}"
            )
        for neighbour in (prefix[-1:], suffix[:1]):
            if neighbour and (_KEPT.fullmatch(neighbour) or neighbour == "%"):
                raise TypeError(
                    f"{owner}.key_format {key_format!r} needs a separator such as ':' or '_' "
                    f"next to {PLACEHOLDER} (not {neighbour!r}), so no user id can reach "
                    'another class\'s keys: for example "feed:{user_id}"'
                )
        return cls(prefix, suffix)

    def key(self, user_id: int | str) -> str:
        """The feed key of one user."""
        return f"{self.prefix}{encode_user_id(user_id)}{self.suffix}"

    @property
    def scope(self) -> str:
        """A name for all feeds of this format together, e.g. ``"10:feed:user:*"``: no two
        formats share one (the length fixes where the prefix ends)."""
        return f"{len(self.prefix)}:{self.prefix}*{self.suffix}"

    def owns(self, feed_key: str) -> bool:
        """Whether ``feed_key`` has this format's shape (no other format's key has it)."""
        return _pattern(self.prefix, self.suffix).fullmatch(feed_key) is not None


@lru_cache(maxsize=1024)
def _parse(key_format: str, owner: str) -> KeyFormat:
    return KeyFormat._parse(key_format, owner)


@lru_cache(maxsize=1024)
def _pattern(prefix: str, suffix: str) -> re.Pattern[str]:
    return re.compile(re.escape(prefix) + _ENCODED_ID + re.escape(suffix))
