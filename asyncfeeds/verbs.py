"""Verbs and the process-wide registry that maps their ids and names to classes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import ClassVar, NoReturn

_by_id: dict[int, type[Verb]] = {}
_by_name: dict[str, type[Verb]] = {}
_builtin: set[type[Verb]] = set()


class Verb:
    """What an actor did: subclass, set ``id``, ``infinitive`` and ``past_tense``, register."""

    id: ClassVar[int] = 0
    infinitive: ClassVar[str] = "verb"
    past_tense: ClassVar[str] = "verbed"

    def __str__(self) -> str:
        return self.infinitive

    @classmethod
    def serialize(cls) -> int:
        """The verb's id, as stored (Stream Framework's name; works on the class too)."""
        return cls.id

    def __repr__(self) -> str:
        return f"<Verb {self.infinitive} id={self.id}>"


def register_verb(verb: type[Verb]) -> type[Verb]:
    """Register ``verb`` under its id and infinitive; usable as a class decorator.

    Registering the same class again is a no-op; another class with a taken id
    or infinitive raises ``ValueError``. The shipped verbs (Follow, Comment, Love,
    Add: ids 1-4, as in Stream Framework) give way to an application's own.
    """
    if not (isinstance(verb, type) and issubclass(verb, Verb)) or verb is Verb:
        raise TypeError(f"register_verb() takes a Verb subclass, got {verb!r}")
    if not isinstance(verb.id, int) or isinstance(verb.id, bool) or verb.id <= 0:
        raise ValueError(f"verb {verb.__name__} needs a positive integer id, got {verb.id!r}")
    for shipped in {_by_id.get(verb.id), _by_name.get(verb.infinitive)} & _builtin - {verb}:
        if shipped is not None:
            _unregister(shipped)
    current = _by_id.get(verb.id)
    if current is not None and current is not verb:
        raise ValueError(
            f"verb id {verb.id} is already registered to {current.__name__}, "
            f"cannot register {verb.__name__}"
        )
    named = _by_name.get(verb.infinitive)
    if named is not None and named is not verb:
        raise ValueError(
            f"verb infinitive {verb.infinitive!r} is already registered to {named.__name__}"
        )
    _by_id[verb.id] = verb
    _by_name[verb.infinitive] = verb
    return verb


register = register_verb
"""Stream Framework's name for ``register_verb``."""


def _unregister(verb: type[Verb]) -> None:
    _builtin.discard(verb)
    if _by_id.get(verb.id) is verb:
        del _by_id[verb.id]
    if _by_name.get(verb.infinitive) is verb:
        del _by_name[verb.infinitive]


def _shipped(verb: type[Verb]) -> type[Verb]:
    """Register one of the verbs asyncfeeds ships, which an application's verb may replace."""
    register_verb(verb)
    _builtin.add(verb)
    return verb


def get_verb_by_id(verb_id: int) -> type[Verb]:
    """Return the verb class registered under ``verb_id``; ``KeyError`` if there is none."""
    try:
        return _by_id[verb_id]
    except KeyError:
        known = ", ".join(str(i) for i in sorted(_by_id)) or "none"
        raise KeyError(
            f"no verb is registered with id {verb_id!r} (registered ids: {known})"
        ) from None


def get_verb_by_name(infinitive: str) -> type[Verb]:
    """Return the verb class registered under ``infinitive``; ``KeyError`` if there is none."""
    try:
        return _by_name[infinitive]
    except KeyError:
        raise KeyError(f"no verb is registered with infinitive {infinitive!r}") from None


class _VerbStorage(Mapping[int, type[Verb]]):
    """A read-only view of the registry by id; registering goes through ``register_verb``."""

    def __getitem__(self, verb_id: int) -> type[Verb]:
        return get_verb_by_id(verb_id)

    def __iter__(self) -> Iterator[int]:
        return iter(dict(_by_id))

    def __len__(self) -> int:
        return len(_by_id)

    def __setitem__(self, verb_id: int, verb: type[Verb]) -> NoReturn:
        raise TypeError("the verb registry is read-only here: call register_verb(verb)")


def get_verb_storage() -> Mapping[int, type[Verb]]:
    """Stream Framework's verb storage: the registered verbs by id, read-only."""
    return _VerbStorage()


def resolve_verb(value: object) -> type[Verb]:
    """Normalise a verb class, instance, id or infinitive to the registered class."""
    if isinstance(value, type) and issubclass(value, Verb):
        registered = _by_id.get(value.id)
        if registered is not value:
            raise ValueError(f"verb {value.__name__} is not registered (call register_verb)")
        return value
    if isinstance(value, Verb):
        return resolve_verb(type(value))
    if isinstance(value, int) and not isinstance(value, bool):
        if value not in _by_id:
            raise ValueError(f"unknown verb id {value}")
        return _by_id[value]
    if isinstance(value, str):
        if value in _by_name:
            return _by_name[value]
        if value.isdigit() and int(value) in _by_id:
            return _by_id[int(value)]
        raise ValueError(f"unknown verb {value!r}")
    raise ValueError(f"a verb must be a registered Verb class, instance, id or name, got {value!r}")


@_shipped
class Follow(Verb):
    """A user followed another."""

    id = 1
    infinitive = "follow"
    past_tense = "followed"


@_shipped
class Comment(Verb):
    """A user commented on an object."""

    id = 2
    infinitive = "comment"
    past_tense = "commented"


@_shipped
class Love(Verb):
    """A user loved an object."""

    id = 3
    infinitive = "love"
    past_tense = "loved"


@_shipped
class Add(Verb):
    """A user added an object (say, a pin to a board)."""

    id = 4
    infinitive = "add"
    past_tense = "added"
