"""The generated follow graph every process of a load run shares.

It is a pure function of ``GraphSpec`` (users, follows per user, popular
accounts, seed), so the app, the workers and the checker each build the same
graph from the same environment variables without storing it anywhere.
Users are ``0 .. users-1``; the first ``popular`` of them are followed by
everyone else; every user also follows ``follows`` other, non-popular users.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True, slots=True)
class GraphSpec:
    """The size and seed of a follow graph."""

    users: int = 2000
    follows: int = 50
    popular: int = 3
    seed: int = 17

    def __post_init__(self) -> None:
        if self.popular < 0 or self.follows < 0:
            raise ValueError("popular and follows must be >= 0")
        if self.users < self.popular + self.follows + 2:
            raise ValueError(
                f"{self.users} users cannot each follow {self.follows} of the "
                f"{self.users - self.popular} non-popular users"
            )

    @classmethod
    def parse(cls, raw: str) -> GraphSpec:
        """The spec of ``users,follows,popular,seed``."""
        try:
            users, follows, popular, seed = (int(part) for part in raw.split(","))
        except ValueError as exc:
            raise ValueError(f"the graph must be users,follows,popular,seed; got {raw!r}") from exc
        return cls(users, follows, popular, seed)

    @classmethod
    def from_env(cls) -> GraphSpec:
        """The spec in ``LOAD_GRAPH``, else the defaults."""
        raw = os.environ.get("LOAD_GRAPH", "")
        return cls.parse(raw) if raw else cls()

    def to_env(self) -> str:
        """The value of ``LOAD_GRAPH`` that rebuilds this spec."""
        return f"{self.users},{self.follows},{self.popular},{self.seed}"


class Graph:
    """Who follows whom, in both directions, as sorted lists."""

    def __init__(self, spec: GraphSpec) -> None:
        self.spec = spec
        rng = random.Random(spec.seed)
        popular = range(spec.popular)
        others = range(spec.popular, spec.users)
        following: list[list[int]] = []
        for user in range(spec.users):
            picked = [u for u in rng.sample(others, spec.follows + 1) if u != user][: spec.follows]
            following.append(sorted({*picked, *(p for p in popular if p != user)}))
        followers: list[list[int]] = [[] for _ in range(spec.users)]
        for user, targets in enumerate(following):
            for target in targets:
                followers[target].append(user)
        self._following = following
        self._followers = followers

    @property
    def users(self) -> range:
        """Every user id."""
        return range(self.spec.users)

    @property
    def popular(self) -> range:
        """The accounts everybody follows."""
        return range(self.spec.popular)

    def followers(self, user: int) -> list[int]:
        """Ids of the users following ``user``, ascending."""
        return self._followers[user]

    def following(self, user: int) -> list[int]:
        """Ids of the users ``user`` follows, ascending."""
        return self._following[user]

    def edges(self) -> int:
        """How many follow relations the graph has."""
        return sum(len(f) for f in self._following)


@cache
def current() -> Graph:
    """The graph of this process's ``LOAD_GRAPH`` (built once)."""
    return Graph(GraphSpec.from_env())
