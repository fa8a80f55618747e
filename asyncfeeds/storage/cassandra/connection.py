"""One acsylla cluster and session per configured name, opened lazily in the running loop.

The session has no keyspace (statements name ``keyspace.table``), prepared
statements are cached per session, and every driver error that means "the
cluster cannot answer this now" (no host, timeouts, unavailable replicas,
overload, a conditional write of unknown outcome) becomes
``StorageUnavailableError`` naming the consistency and the addresses. The
fallthrough retry policy lets the server's own reason through (say "Cannot
achieve consistency level THREE") instead of a generic "no hosts available".
One request timeout bounds reads and writes alike.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, TypeVar

from ... import config
from ...cassandra_settings import SSL_VERIFY
from ...exceptions import AsyncFeedsError, StorageUnavailableError

try:
    import acsylla as acsylla  # re-exported for the other Cassandra modules
except ImportError:  # the optional "cassandra" extra is not installed
    acsylla = None

T = TypeVar("T")

MAX_IN_FLIGHT = 128
"""Statements one client runs at once; fanout of a chunk queues behind this bound."""
CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection (TCP, TLS, protocol and login) to one node."""
REQUEST_TIMEOUT = 5.0
"""Seconds one node has to answer a read or a write, whatever it waits for."""
SCHEMA_TIMEOUT = 60.0
"""Seconds a schema change may take (it waits for every node to agree)."""

_UNKNOWN_OUTCOME: tuple[type[Exception], ...] = (
    ()
    if acsylla is None
    else (
        acsylla.errors.CassErrorLibRequestTimedOut,
        acsylla.errors.CassErrorServerWriteTimeout,
        acsylla.errors.CassErrorServerWriteFailure,
    )
)
"""Errors after which a write may or may not have been applied."""
_UNAVAILABLE: tuple[type[Exception], ...] = (
    ()
    if acsylla is None
    else (
        *_UNKNOWN_OUTCOME,
        acsylla.errors.CassErrorLibNoHostsAvailable,
        acsylla.errors.CassErrorLibUnableToConnect,
        acsylla.errors.CassErrorLibUnableToDetermineProtocol,
        acsylla.errors.CassErrorLibHostResolution,
        acsylla.errors.CassErrorLibNoStreams,
        acsylla.errors.CassErrorLibRequestQueueFull,
        acsylla.errors.CassErrorLibWriteError,
        acsylla.errors.CassErrorLibUnableToSetKeyspace,
        acsylla.errors.CassErrorServerUnavailable,
        acsylla.errors.CassErrorServerOverloaded,
        acsylla.errors.CassErrorServerIsBootstrapping,
        acsylla.errors.CassErrorServerReadTimeout,
        acsylla.errors.CassErrorServerReadFailure,
        acsylla.errors.CassErrorServerTruncateError,
        acsylla.errors.CassErrorServerServerError,
        acsylla.errors.CassErrorServerBadCredentials,
        acsylla.errors.CassErrorSourceSsl,
        acsylla.errors.CassExceptionConnectionError,
    )
)
"""Errors meaning the cluster cannot answer now (usage errors such as bad CQL stay as they are)."""
_SERIAL_FOR = {"QUORUM", "ALL", "EACH_QUORUM"}
_OPTION_VALUE = re.compile(r"^[A-Za-z0-9_.\-]+$")


class CassandraSchemaError(AsyncFeedsError, RuntimeError):
    """A keyspace or table is missing: ``await asyncfeeds.setup(FeedClass)`` creates it."""


class OutcomeUnknownError(StorageUnavailableError):
    """A write timed out after reaching the cluster: it may or may not have been applied.

    Retrying the same write is safe where the write is idempotent; a conditional
    write can be resolved by reading at serial consistency.
    """


def consistency_level(name: Any) -> acsylla.Consistency:
    """The acsylla consistency for a name such as ``"LOCAL_QUORUM"``; ``ValueError`` otherwise."""
    levels = acsylla.Consistency.__members__
    if not isinstance(name, str) or name.upper() not in levels:
        raise ValueError(f"unknown Cassandra consistency {name!r}; use one of {sorted(levels)}")
    return levels[name.upper()]


class CassandraClient:
    """A lazily connected acsylla session with its prepared statements and settings."""

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        """``options`` as ``config.cassandra_options`` returns them (checked and complete)."""
        if acsylla is None:
            raise AsyncFeedsError(
                "Cassandra feeds need the acsylla driver: pip install 'asyncfeeds[cassandra]'"
            )
        self.name = name
        self.hosts: list[str] = list(options["hosts"])
        self.port: int = options["port"]
        self.keyspace: str = identifier(options["keyspace"], "keyspace")
        self.consistency = consistency_level(options["consistency"])
        serial = "SERIAL" if self.consistency.name in _SERIAL_FOR else "LOCAL_SERIAL"
        self.serial_consistency = acsylla.Consistency[serial]
        self.replication_cql = replication_cql(
            options.get("replication") or {"class": "SimpleStrategy", "replication_factor": 1}
        )
        self.connect_timeout = float(options.get("connect_timeout", CONNECT_TIMEOUT))
        self.request_timeout = float(options.get("request_timeout", REQUEST_TIMEOUT))
        self._login = {k: options[k] for k in ("username", "password") if k in options}
        self._tls = dict(options) if options.get("ssl") else None
        self._session: acsylla.Session | None = None
        self._connecting: asyncio.Task[acsylla.Session] | None = None
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
        """The connected session, opened on first use.

        Callers that arrive while a connection is being opened share its outcome:
        when nothing answers they all fail together, within the connect timeout.
        """
        if self._session is not None:
            return self._session
        task = self._connecting
        if task is None:
            task = self._connecting = asyncio.ensure_future(self._connect())
            task.add_done_callback(self._connected)
        return await asyncio.shield(task)

    def _connected(self, task: asyncio.Task[acsylla.Session]) -> None:
        """Keep a new session; after a failure the next call tries again."""
        if self._connecting is task:
            self._connecting = None
        if not task.cancelled() and task.exception() is None:
            self._session = task.result()

    async def _connect(self) -> acsylla.Session:
        try:
            cluster = acsylla.create_cluster(
                self.hosts,
                port=self.port,
                connect_timeout=self.connect_timeout,
                request_timeout=self.request_timeout,
                log_level="critical",
                consistency=self.consistency,
                serial_consistency=self.serial_consistency,
                timestamp_gen="monotonic",
                retry_policy="fallthrough",
                **self._login,
                **_tls_arguments(self._tls),
            )
            return await cluster.create_session()
        except acsylla.errors.CassException as exc:
            raise self._unavailable(exc, None) from exc

    async def ping(self) -> None:
        """Open the session if needed and read from one node; errors as for any call."""
        await self.execute(
            "SELECT release_version FROM system.local", consistency=acsylla.Consistency.ONE
        )

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
                raise self._unavailable(exc, None) from exc
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
        return await self.run(
            self._session.execute(statement),  # type: ignore[union-attr]
            consistency,
            write=not cql.lstrip()[:6].upper() == "SELECT",
            conditional=" IF " in cql.upper(),
        )

    async def execute_batch(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> Any:
        """Run statements as one unlogged batch (callers keep it within one partition)."""
        batch = acsylla.create_batch_unlogged()
        for cql, params in statements:
            batch.add_statement((await self.prepare(cql))(list(params)))
        return await self.run(
            self._session.execute_batch(batch), write=True  # type: ignore[union-attr]
        )

    async def execute_schema_change(self, cql: str) -> None:
        """Run a DDL statement (it has no parameters; the driver waits for schema agreement)."""
        session = await self.session()
        await self.run(
            session.execute(acsylla.create_statement(cql, timeout=SCHEMA_TIMEOUT)), write=True
        )

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

    async def run(
        self,
        call: Awaitable[T],
        consistency: acsylla.Consistency | None = None,
        *,
        write: bool = False,
        conditional: bool = False,
    ) -> T:
        """Await a driver call within the in-flight bound, translating unavailability.

        A write that timed out raises ``OutcomeUnknownError``: it may have been applied.
        """
        async with self._in_flight:
            try:
                return await call
            except _UNAVAILABLE as exc:
                raise self._unavailable(exc, consistency, write, conditional) from exc

    def _unavailable(
        self,
        exc: Exception,
        consistency: acsylla.Consistency | None,
        write: bool = False,
        conditional: bool = False,
    ) -> StorageUnavailableError:
        """The error to raise for a driver error: which, at what consistency, on which hosts."""
        level = self.consistency.name
        if consistency is not None and consistency.name.endswith("SERIAL"):
            level += f", serial {consistency.name}"
        elif consistency is not None:
            level = consistency.name
        if conditional:
            level += f", serial {self.serial_consistency.name}"
        unknown = write and (
            isinstance(exc, _UNKNOWN_OUTCOME) or "CAS operation result is unknown" in str(exc)
        )
        error = OutcomeUnknownError if unknown else StorageUnavailableError
        what = "did not confirm the write" if unknown else "is unavailable"
        return error(
            f"Cassandra cluster {self.name!r} at {self.address} {what} "
            f"(consistency {level}): {type(exc).__name__}: {exc}"
        )

    async def close(self) -> None:
        """Close the session, if one was opened (or stop opening it)."""
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        session, self._session = self._session, None
        self._prepared.clear()
        if session is not None:
            await session.close()


def _tls_arguments(options: dict[str, Any] | None) -> dict[str, Any]:
    """acsylla's TLS arguments: PEM contents read from the configured files."""
    if options is None:
        return {}

    def read(key: str) -> str | None:
        path = options.get(key)
        if path is None:
            return None
        with open(path, encoding="ascii") as file:
            return file.read()

    arguments: dict[str, Any] = {
        "ssl_enabled": True,
        "ssl_verify_flags": SSL_VERIFY[options.get("ssl_verify", "cert")],
    }
    for key, argument in (
        ("ssl_ca_certs", "ssl_trusted_cert"),
        ("ssl_certfile", "ssl_cert"),
        ("ssl_keyfile", "ssl_private_key"),
    ):
        content = read(key)
        if content is not None:
            arguments[argument] = content
    return arguments


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
