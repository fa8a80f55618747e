"""Lone script calls on a single server: sent straight on a pooled connection, and those
made while another is in flight sent together, as one pipeline, when it returns.

redis-py's ``execute_command`` takes the pool's lock, probes the connection and sends
through ``wait_for`` (a task) on every call; a call here does none of that, and many
concurrent readers share a few round trips instead of a connection each.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

Command = tuple[Any, ...]

SMALL_COMMAND = 64 * 1024
"""Bytes up to which packed commands are written straight to the connection's stream (the
transport buffers that much without making the writer wait)."""

_SEND = Connection.send_packed_command


class _Calls:
    """One client's script calls: whether one is in flight, and those waiting for it."""

    def __init__(self) -> None:
        self.busy = False
        self.waiting: list[tuple[Command, asyncio.Future[Any]]] = []
        self.sender: asyncio.Task[None] | None = None  # held, so it is not collected


_calls: weakref.WeakKeyDictionary[Redis, _Calls] = weakref.WeakKeyDictionary()


async def script_call(client: Redis, command: Command) -> Any:
    """The reply of one ``EVALSHA`` (no reply callback); an error reply is returned, not
    raised, as a pipeline returns it. Retried once on a connection error, as redis-py
    retries a command."""
    calls = _calls.get(client)
    if calls is None:
        calls = _calls[client] = _Calls()
    if calls.busy:
        future = asyncio.get_running_loop().create_future()
        calls.waiting.append((command, future))
        return await future
    calls.busy = True
    try:
        return (await _call(client, [command]))[0]
    finally:
        if calls.waiting:
            calls.sender = asyncio.get_running_loop().create_task(_send_waiting(client, calls))
        else:
            calls.busy = False


async def _send_waiting(client: Redis, calls: _Calls) -> None:
    """Send the calls that waited, as one pipeline per turn, until none is left."""
    try:
        while calls.waiting:
            batch, calls.waiting = calls.waiting, []
            try:
                replies = await _call(client, [command for command, _ in batch])
            except Exception as exc:  # every caller of the batch gets the failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:
                for _, future in batch:
                    future.cancel()
                raise
            for (_, future), reply in zip(batch, replies, strict=True):
                if not future.done():
                    future.set_result(reply)
    finally:
        calls.busy = False
        calls.sender = None
        for _, future in calls.waiting:  # only left if this task was cancelled
            if not future.done():
                future.cancel()
        calls.waiting = []


async def _call(client: Redis, commands: list[Command]) -> list[Any]:
    """The replies of ``commands`` sent at once on one pooled connection (error replies
    returned in their place); a failure is retried only where redis-py would retry it."""
    pool = client.connection_pool
    connection = pool.get_available_connection()  # type: ignore[no-untyped-call]
    try:
        replies: list[Any] = await connection.retry.call_with_retry(
            lambda: _send_and_read(connection, commands),
            lambda error: _disconnect_raise(connection, error),
        )
        return replies
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        await pool.release(connection)


async def _disconnect_raise(connection: Connection, error: Exception) -> None:
    """As redis-py's ``execute_command``: retry only the errors the connection retries."""
    await connection.disconnect()
    if not isinstance(error, tuple(connection.retry_on_error or ())):
        raise error


async def _send_and_read(connection: Connection, commands: list[Command]) -> list[Any]:
    reader = getattr(connection, "_reader", None)
    writer = getattr(connection, "_writer", None)
    if writer is not None and (writer.is_closing() or (reader is not None and reader.at_eof())):
        await connection.disconnect()  # the server closed it while it sat in the pool
    await connection.connect()  # type: ignore[no-untyped-call]
    packed = _pack_all(commands)
    writer = getattr(connection, "_writer", None)
    if packed is not None and writer is not None and type(connection).send_packed_command is _SEND:
        # Small commands fit the transport's buffer, so the write never waits; redis-py's
        # send_packed_command would run it as a task under wait_for (one more loop turn).
        # A connection class with its own send_packed_command (instrumentation) keeps it.
        try:
            writer.write(packed)
            await writer.drain()
        except OSError as exc:
            raise RedisConnectionError(f"Error while writing to Redis: {exc}") from exc
    else:
        await connection.send_packed_command(
            connection.pack_commands(commands), check_health=False
        )
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(await connection.read_response())
        except ResponseError as exc:  # the error reply is read: the connection stays clean
            replies.append(exc)
    return replies


def _pack_all(commands: list[Command]) -> bytes | None:
    """The RESP encoding of ``commands`` if each packs here and all fit ``SMALL_COMMAND``."""
    packed = [_pack(command) for command in commands]
    if None in packed:
        return None
    joined = b"".join(packed)  # type: ignore[arg-type]
    return joined if len(joined) <= SMALL_COMMAND else None


def _pack(command: Command) -> bytes | None:
    """The RESP encoding of a command of str, int and bytes arguments up to
    ``SMALL_COMMAND`` bytes; None for anything else (redis-py then packs and sends it)."""
    parts = [b"*%d\r\n" % len(command)]
    size = 0
    for arg in command:
        if type(arg) is str:
            arg = arg.encode()
        elif type(arg) is int:
            arg = b"%d" % arg
        elif type(arg) is not bytes:
            return None
        size += len(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts) if size <= SMALL_COMMAND else None
