"""One acsylla cluster and session per configured name, opened lazily in the running loop.

The session has no keyspace (statements name ``keyspace.table``), prepared
statements are cached per session, and driver errors that mean "nothing
answers" become ``StorageUnavailableError`` naming the addresses. The
fallthrough retry policy lets the server's own reason through (say "Cannot
achieve consistency level THREE") instead of a generic "no hosts available".
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, TypeVar

from ... import config
from ...exceptions import AsyncFeedsError, StorageUnavailableError

try:
    import acsylla
except ImportError:  # the optional "cassandra" extra is not installed
    acsylla = None

T = TypeVar("T")

MAX_IN_FLIGHT = 128
"""Statements one client runs at once; fanout of a chunk queues behind this bound."""

_UNAVAILABLE = (
    ()
    if acsylla is None
    else (
        acsylla.errors.CassErrorLibNoHostsAvailable,
        acsylla.errors.CassErrorLibUnableToConnect,
        acsylla.errors.CassErrorLibRequestTimedOut,
        acsylla.errors.CassErrorServerUnavailable,
        acsylla.errors.CassErrorServerOverloaded,
        acsylla.errors.CassErrorServerIsBootstrapping,
    )
)
_SERIAL_FOR = {"QUORUM", "ALL", "EACH_QUORUM"}
_OPTION_VALUE = re.compile(r"^[A-Za-z0-9_.\-]+$")


class CassandraSchemaError(AsyncFeedsError, RuntimeError):
    """A keyspace or table is missing: ``await asyncfeeds.setup(FeedClass)`` creates it."""


def consistency_level(name: Any) -> acsylla.Consistency:
    """The acsylla consistency for a name such as ``"LOCAL_QUORUM"``; ``ValueError`` otherwise."""
    levels = acsylla.Consistency.__members__
    if not isinstance(name, str) or name.upper() not in levels:
        raise ValueError(f"unknown Cassandra consistency {name!r}; use one of {sorted(levels)}")
    return levels[name.upper()]


class CassandraClient:
    """A lazily connected acsylla session with its prepared statements and settings."""

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        if acsylla is None:
            raise AsyncFeedsError(
                "Cassandra feeds need the acsylla driver: pip install 'asyncfeeds[cassandra]'"
            )
        hosts = options["hosts"]
        if isinstance(hosts, str):
            hosts = [h.strip() for h in hosts.split(",") if h.strip()]
        if not hosts or not all(isinstance(h, str) and h for h in hosts):
            raise ValueError(f"cassandra cluster {name!r} needs a list of host names")
        port = options["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"cassandra cluster {name!r} has an invalid port {port!r}")
        self.name = name
        self.hosts: list[str] = list(hosts)
        self.port: int = port
        self.keyspace: str = identifier(options["keyspace"], "keyspace")
        self.consistency = consistency_level(options["consistency"])
        serial = "SERIAL" if self.consistency.name in _SERIAL_FOR else "LOCAL_SERIAL"
        self.serial_consistency = acsylla.Consistency[serial]
        self.replication_cql = replication_cql(
            options.get("replication") or {"class": "SimpleStrategy", "replication_factor": 1}
        )
        self.connect_timeout = float(options.get("connect_timeout", 5.0))
        self._session: acsylla.Session | None = None
        self._connecting = asyncio.Lock()
        self._prepared: dict[str, Any] = {}
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    @property
    def address(self) -> str:
        """``host:port`` of every contact point, for error messages."""
        return ", ".join(f"{host}:{self.port}" for host in self.hosts)

    def table(self, name: str) -> str:
        """The fully qualified ``keyspace.table`` name."""
        return f"{self.keyspace}.{identifier(name, 'table')}"

    async def session(self) -> acsylla.Session:
        """The connected session, opened on first use."""
        if self._session is not None:
            return self._session
        async with self._connecting:
            if self._session is None:
                cluster = acsylla.create_cluster(
                    self.hosts,
                    port=self.port,
                    connect_timeout=self.connect_timeout,
                    request_timeout=12.0,
                    log_level="critical",
                    consistency=self.consistency,
                    serial_consistency=self.serial_consistency,
                    timestamp_gen="monotonic",
                    retry_policy="fallthrough",
                )
                try:
                    self._session = await cluster.create_session()
                except acsylla.errors.CassException as exc:
                    raise self._unavailable(exc) from None
        return self._session

    async def prepare(self, cql: str) -> Any:
        """A prepared statement for ``cql``, prepared once per session."""
        prepared = self._prepared.get(cql)
        if prepared is None:
            session = await self.session()
            try:
                prepared = await session.create_prepared(cql)
            except acsylla.errors.CassErrorServerInvalidQuery as exc:
                if "does not exist" in str(exc):
                    raise CassandraSchemaError(
                        f"{exc} in Cassandra at {self.address}; run "
                        f"`await asyncfeeds.setup(YourFeedClass)` first"
                    ) from None
                raise
            except _UNAVAILABLE as exc:
                raise self._unavailable(exc) from None
            self._prepared[cql] = prepared
        return prepared

    async def execute(
        self,
        cql: str,
        params: Sequence[Any] = (),
        *,
        page_size: int | None = None,
        page_state: bytes | None = None,
        consistency: acsylla.Consistency | None = None,
    ) -> Any:
        """Run a prepared statement with positional ``params``."""
        prepared = await self.prepare(cql)
        statement = prepared(
            list(params), page_size=page_size, page_state=page_state, consistency=consistency
        )
        return await self.run(self._session.execute(statement))  # type: ignore[union-attr]

    async def execute_batch(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> Any:
        """Run statements as one unlogged batch (callers keep it within one partition)."""
        batch = acsylla.create_batch_unlogged()
        for cql, params in statements:
            batch.add_statement((await self.prepare(cql))(list(params)))
        return await self.run(self._session.execute_batch(batch))  # type: ignore[union-attr]

    async def execute_schema_change(self, cql: str) -> None:
        """Run a DDL statement (it has no parameters; the driver waits for schema agreement)."""
        session = await self.session()
        await self.run(session.execute(acsylla.create_statement(cql)))

    async def rows(
        self,
        cql: str,
        params: Sequence[Any] = (),
        page_size: int = 5000,
        consistency: acsylla.Consistency | None = None,
    ) -> list[dict[str, Any]]:
        """Every row of a query as a dict, following the pages."""
        rows: list[dict[str, Any]] = []
        state = None
        while True:
            result = await self.execute(
                cql, params, page_size=page_size, page_state=state, consistency=consistency
            )
            rows.extend(row.as_dict() for row in result)  # a row is only valid while iterating
            if not result.has_more_pages():
                return rows
            state = result.page_state()

    async def run(self, call: Awaitable[T]) -> T:
        """Await a driver call within the in-flight bound, translating unavailability."""
        async with self._in_flight:
            try:
                return await call
            except _UNAVAILABLE as exc:
                raise self._unavailable(exc) from None

    def _unavailable(self, exc: Exception) -> StorageUnavailableError:
        return StorageUnavailableError(
            f"Cassandra cluster {self.name!r} at {self.address} is unavailable "
            f"(consistency {self.consistency.name}): {exc}"
        )

    async def close(self) -> None:
        """Close the session, if one was opened."""
        session, self._session = self._session, None
        self._prepared.clear()
        if session is not None:
            await session.close()


def get_client(name: str) -> CassandraClient:
    """The running loop's client for the Cassandra cluster configured as ``name``."""
    return config.cached_client(  # type: ignore[no-any-return]
        "cassandra", name, lambda: CassandraClient(name, config.cassandra_options(name)), _close
    )


async def _close(client: CassandraClient) -> None:
    await client.close()


def replication_cql(replication: Any) -> str:
    """The CQL map literal of a replication setting; ``ValueError`` on anything unexpected."""
    if not isinstance(replication, dict) or "class" not in replication:
        raise ValueError(f"replication needs a dict with a 'class', got {replication!r}")
    items = []
    for key, value in replication.items():
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError(f"replication option {key!r} must be a string or an int")
        if not _OPTION_VALUE.match(str(key)) or not _OPTION_VALUE.match(str(value)):
            raise ValueError(f"invalid replication option {key!r}: {value!r}")
        items.append(f"'{key}': '{value}'")
    return "{" + ", ".join(items) + "}"


def identifier(value: Any, what: str) -> str:
    """A CQL name we can put in a statement: letters, digits and underscores."""
    if (
        not isinstance(value, str)
        or not value
        or len(value) > 48
        or not value.replace("_", "a").isalnum()
        or not value.isascii()
        or not value[0].isalpha()
    ):
        raise ValueError(f"invalid Cassandra {what} name {value!r} (letters, digits, underscores)")
    return value.lower()
