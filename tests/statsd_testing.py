"""A real StatsD receiver for tests: an asyncio UDP endpoint on loopback that keeps every line."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

END = "test.end:1|c"
"""A line a test sends last, so it knows every datagram before it has arrived."""


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[str] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.put_nowait(data.decode())


class StatsdServer:
    """What the endpoint received, datagram by datagram."""

    def __init__(self, receiver: _Receiver, port: int) -> None:
        self._receiver = receiver
        self.port = port

    async def datagrams_until_end(self, within: float = 5.0) -> list[str]:
        """Every datagram up to the ``END`` line (not included); it must come ``within`` seconds."""
        received: list[str] = []
        async with asyncio.timeout(within):
            while True:
                datagram = await self._receiver.datagrams.get()
                if datagram.endswith(END):
                    if datagram != END:
                        received.append(datagram)
                    return received
                received.append(datagram)


@asynccontextmanager
async def statsd_server() -> AsyncIterator[StatsdServer]:
    """A UDP endpoint on 127.0.0.1 and a free port, closed on exit."""
    loop = asyncio.get_running_loop()
    transport, receiver = await loop.create_datagram_endpoint(
        _Receiver, local_addr=("127.0.0.1", 0)
    )
    try:
        yield StatsdServer(receiver, transport.get_extra_info("sockname")[1])
    finally:
        transport.close()


def lines_of(datagrams: list[str]) -> list[str]:
    """The StatsD lines of datagrams (one datagram may carry several, newline separated)."""
    return [line for datagram in datagrams for line in datagram.split("\n")]
