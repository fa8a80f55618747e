"""Real processes for the web example tests: an app under uvicorn or aiohttp's server, and
``asyncfeeds worker`` processes, started from the repository root like a user would."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import redis
from private_servers import free_port

ROOT = Path(__file__).resolve().parent.parent
ASYNCFEEDS = str(Path(sys.executable).with_name("asyncfeeds"))
START_WITHIN = 60.0
"""Seconds an app has to answer its health check (imports on a busy 2-core box)."""

T = TypeVar("T")


def namespace() -> str:
    """A key and queue prefix of one's own on the shared Redis."""
    return f"webtest-{uuid.uuid4().hex[:12]}"


def app_env(**settings: str) -> dict[str, str]:
    """The environment without ASYNCFEEDS_* settings, plus the example's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCFEEDS_")}
    return {**env, **settings}


@dataclass
class Process:
    """A child process whose output goes to a log file."""

    args: list[str]
    env: dict[str, str]
    log: Path
    new_session: bool = False
    """Run in a process group of its own, as a command typed in a terminal."""
    popen: subprocess.Popen[bytes] = field(init=False)

    def __post_init__(self) -> None:
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=self.new_session,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """SIGINT (Ctrl-C), then kill if it does not end within 10 seconds."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)

    def ctrl_c(self) -> int:
        """SIGINT to the whole process group, as Ctrl-C in a terminal; the exit status."""
        os.killpg(self.popen.pid, signal.SIGINT)
        return self.popen.wait(30)

    def group_alive(self) -> bool:
        """Whether any process of its group is still running."""
        try:
            os.killpg(self.popen.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill_group(self) -> None:
        if self.group_alive():
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)


@dataclass
class App:
    """A web app process, the URL it answers on, and the workers beside it."""

    process: Process
    url: str
    workers: list[Process] = field(default_factory=list)

    def logs(self) -> str:
        """The end of every process's output, for failure messages."""
        return "\n".join(f"--- {p.log.name}\n{p.output()[-3000:]}"
                         for p in (self.process, *self.workers))


def start_app(kind: str, env: dict[str, str], log: Path) -> App:
    """The FastAPI example under uvicorn, or the aiohttp example under aiohttp's server,
    on a free loopback port, once its health check answers."""
    port = str(free_port())
    if kind == "fastapi":
        args = ["-m", "uvicorn", "examples.pinterest.app:app", "--host", "127.0.0.1",
                "--port", port]
    else:
        args = ["-m", "aiohttp.web", "-H", "127.0.0.1", "-P", port,
                "examples.aiohttp_app:create_app"]
    app = App(Process([sys.executable, *args], env, log), f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + START_WITHIN
    while time.monotonic() < deadline:
        if app.process.popen.poll() is not None:
            raise AssertionError(f"{kind} app exited:\n{app.process.output()}")
        try:
            if httpx.get(f"{app.url}/healthz", timeout=2).status_code == 200:
                return app
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    app.process.stop()
    raise AssertionError(f"{kind} app did not answer within {START_WITHIN:g} s:\n"
                         f"{app.process.output()}")


def start_worker(module: str, manager: str, priority: str, env: dict[str, str],
                 log: Path) -> Process:
    """``asyncfeeds worker`` for one priority queue of the example's manager."""
    return Process([ASYNCFEEDS, "worker", "--manager", f"{module}:{manager}", "--priority",
                    priority, "--config", f"{module}:configure"], env, log)


@contextmanager
def stack(app: Callable[[], App], workers: list[Process], redis_url: str,
          prefix: str) -> Iterator[App]:
    """Run the app (workers already started); stop everything and drop the keys after."""
    try:
        started = app()
    except BaseException:
        for worker in workers:
            worker.stop()
        drop_keys(redis_url, prefix)
        raise
    started.workers = workers
    try:
        yield started
    finally:
        started.process.stop()
        for worker in workers:
            worker.stop()
        drop_keys(redis_url, prefix)


def drop_keys(redis_url: str, prefix: str) -> None:
    """Delete every key whose name holds ``prefix`` (feeds, activities, queues)."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])
    finally:
        client.close()


async def eventually(check: Callable[[], Awaitable[T]], expected: T, *, within: float = 30.0,
                     explain: Callable[[], str] = lambda: "") -> None:
    """Wait until ``await check() == expected``: a promise of "within N seconds", not a timing."""
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if found == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"after {within:g} s: {found!r} != {expected!r}\n{explain()}")
        await asyncio.sleep(0.1)


async def next_event(lines: AsyncIterator[str]) -> dict[str, str]:
    """The next server-sent event: its fields (``event``, ``data``) or ``{"comment": ...}``."""
    event: dict[str, str] = {}
    async for line in lines:
        if not line:
            if event:
                return event
        elif line.startswith(":"):
            event["comment"] = line[1:].strip()
        else:
            name, _, value = line.partition(":")
            event[name] = value.strip()
    raise AssertionError(f"the event stream ended; read so far: {event!r}")
