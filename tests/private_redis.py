"""A redis-server of the test's own, to kill, stop and restart (never the shared servers).

It keeps an append-only file fsynced on every write, so a kill -9 and restart
loses nothing that was acknowledged, as a production Redis configured for
durability would; ``--save ""`` keeps RDB snapshots out of the way.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """One redis-server process on a free port, its data in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        binary = shutil.which("redis-server")
        assert binary, "redis-server must be installed to run this test"
        self.binary = binary

    def start(self) -> None:
        """Start the server (loading its append-only file) and wait until it answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory),
             "--daemonize", "no", "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._answers():
                return
            assert self.process.poll() is None, (self.directory / "redis.log").read_text()
            time.sleep(0.05)
        raise AssertionError(f"private redis-server on {self.port} did not start")

    def kill(self) -> None:
        """kill -9 the server and wait for it to be gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop_signal(self, sig: signal.Signals) -> None:
        """Send SIGSTOP or SIGCONT to the server."""
        assert self.process is not None
        os.kill(self.process.pid, sig)

    def close(self) -> None:
        """Resume (if stopped) and kill the server."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
        self.kill()

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False
