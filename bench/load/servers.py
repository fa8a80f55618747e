"""The processes of a load run: a private redis-server, the app, the workers, locust.

Every process is started here, known by its pid, and stopped by that pid: the
shared test servers of the machine are never touched. The Redis keeps an
append-only file fsynced on every write, so a kill -9 and restart loses
nothing it acknowledged, as a production Redis set up for durability would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, timeout: float,
             process: subprocess.Popen[bytes] | None, log: Path | None = None) -> None:
    """Poll ``check()`` until it is true; fail naming ``what`` (and the log's tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s\n{tail}")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a live process has used so far (None if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RedisServer:
    """A redis-server of the run's own on a free port, its data in ``directory``."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is needed (apt-get install redis-server)")
        self.binary = binary
        self.directory = directory
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = directory / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server (reloading its append-only file) and wait until it answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory),
             "--daemonize", "no", "--logfile", str(self.log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self.answers, f"redis-server on {self.port}", 30, self.process, self.log)

    def answers(self) -> bool:
        """Whether the server replies PONG (and has loaded its data)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """kill -9 the server and wait until it is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class Service:
    """A child process (app, worker, locust) writing its output to a log file."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, env: dict[str, str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (again), appending to its log."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=self.env, cwd=HERE,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then kill -9 after ``timeout`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment plus the run's variables, with the load app importable."""
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def asyncfeeds_command() -> list[str]:
    """The ``asyncfeeds`` command line of this interpreter's environment."""
    script = Path(sys.executable).with_name("asyncfeeds")
    if script.exists():
        return [str(script)]
    found = shutil.which("asyncfeeds")
    if found is None:
        raise RuntimeError("the asyncfeeds command is not installed (make install)")
    return [found]


def worker(priority: str, index: int, log_dir: Path, env: dict[str, str]) -> Service:
    """An ``asyncfeeds worker`` of the load app's manager for one priority queue."""
    return Service(
        f"worker-{priority}-{index}",
        [*asyncfeeds_command(), "worker", "--manager", "feeds:manager",
         "--priority", priority, "--config", "feeds:configure"],
        log_dir / f"worker-{priority}-{index}.log", env,
    )


def app_server(port: int, log_dir: Path, env: dict[str, str]) -> Service:
    """uvicorn serving the load app on ``port`` (one process)."""
    return Service(
        "app",
        [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        log_dir / "app.log", env,
    )


def locust(url: str, users: int, spawn_rate: float, duration: float, csv_prefix: Path,
           log_dir: Path, env: dict[str, str]) -> Service:
    """Headless locust against ``url``, stats into ``<csv_prefix>_stats.csv``."""
    return Service(
        "locust",
        [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless",
         "--host", url, "-u", str(users), "-r", str(spawn_rate), "-t", f"{duration:g}s",
         "--csv", str(csv_prefix), "--stop-timeout", "10", "--loglevel", "WARNING",
         "--exit-code-on-error", "0"],
        log_dir / "locust.log", env,
    )
