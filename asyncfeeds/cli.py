"""The ``asyncfeeds`` command line: ``demo``, ``worker``, ``status``, ``requeue-dead``, ``setup``.

Heavy imports (the demo, the fanout worker) happen inside the commands, so
``asyncfeeds --help`` is quick and each command fails on its own. Every error
(bad arguments, unreachable servers, missing extras, bad settings) is one line
on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from .exceptions import AsyncFeedsError
from .importing import ImportPathError, import_object

if TYPE_CHECKING:  # recent click makes ParamType generic; older releases are not subscriptable
    _StrParam = click.ParamType[str, Any]
else:
    _StrParam = click.ParamType


class ImportPath(_StrParam):
    """A ``module:attribute`` path, checked by importing it; the value stays the string."""

    name = "MODULE:ATTR"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            import_object(value)
        except ImportPathError as error:
            self.fail(str(error), param, ctx)
        return str(value)


class ManagerPath(ImportPath):
    """The import path of a ``Manager`` instance or subclass."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from .fanout.worker import load_manager

        try:
            load_manager(value)
        except ImportPathError as error:
            self.fail(str(error), param, ctx)
        return str(value)


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _path_option(name: str, kind: ImportPath, required: bool, help_text: str) -> Decorator:
    return click.option(name, f"{name.strip('-')}_path", type=kind, required=required,
                        help=help_text)


MANAGER = _path_option("--manager", ManagerPath(), True,
                       "Import path of your Manager instance, such as myapp.feeds:manager.")
CONFIG = _path_option("--config", ImportPath(), False,
                      "Import path of your configuration function (sync or async), such as "
                      "myapp.settings:configure_feeds; it runs before anything else.")
VERBOSE: Decorator = click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="asyncfeeds", prog_name="asyncfeeds")
def cli() -> None:
    """asyncio-native activity feeds: flat, aggregated and notification feeds with fanout."""


@cli.command()
@click.option(
    "--backend",
    type=click.Choice(["memory", "redis", "cassandra"]),
    default="memory",
    show_default=True,
    help="Storage to run on; redis reads ASYNCFEEDS_REDIS_URL, cassandra ASYNCFEEDS_CASSANDRA_*.",
)
@click.option(
    "--users",
    type=click.IntRange(3, 5000),
    default=30,
    show_default=True,
    help="How many users the world has.",
)
@click.option("--no-progress", is_flag=True, help="Hide the fanout progress bar.")
def demo(backend: str, users: int, no_progress: bool) -> None:
    """Run a small Pinterest-like world end to end and print one user's feeds."""
    from .demo import DemoError, run_demo

    progress = None if no_progress else sys.stderr
    try:
        asyncio.run(run_demo(backend=backend, users=users, out=sys.stdout, progress=progress))
    except DemoError as error:
        raise click.ClickException(str(error)) from None


@cli.command()
@MANAGER
@click.option(
    "--priority",
    type=click.Choice(["high", "low"]),
    required=True,
    help="Which fanout queue this worker serves.",
)
@CONFIG
@click.option("--burst", is_flag=True, help="Stop once the queue is empty.")
@click.option(
    "--check",
    is_flag=True,
    help="Do not run: exit 0 if a worker of this queue recorded its health lately, else 1.",
)
@VERBOSE
def worker(
    manager_path: str, priority: str, config_path: str | None, burst: bool, check: bool,
    verbose: bool,
) -> None:
    """Run an arq worker for one fanout priority queue, until SIGTERM or SIGINT.

    The queue is the manager's queue_url, else ASYNCFEEDS_QUEUE_URL, else the feeds'
    default Redis (configure() in --config, else ASYNCFEEDS_REDIS_URL).
    """
    from .fanout.manager import FanoutPriority
    from .fanout.worker import load_config, load_manager, serve, worker_health

    _log_to_stderr(verbose)
    manager = load_manager(manager_path)
    config = load_config(config_path) if config_path else None
    if check:
        health = asyncio.run(worker_health(manager, priority, config=config))
        if health is None:
            raise click.ClickException(
                f"no worker of {manager.queue_names[FanoutPriority(priority)]} recorded its health "
                "lately"
            )
        click.echo(f"healthy: {health}")
        return
    asyncio.run(serve(manager, priority, config=config, burst=burst))


@cli.command()
@MANAGER
@CONFIG
@VERBOSE
def status(manager_path: str, config_path: str | None, verbose: bool) -> None:
    """Print each priority queue's jobs: queued, in progress, retrying, dead, oldest age.

    The same numbers go to the manager's metrics (Metrics.on_queue_status).
    """
    from .fanout.status import report_queue_status
    from .fanout.worker import load_config, load_manager

    _log_to_stderr(verbose)
    manager = load_manager(manager_path)
    config = load_config(config_path) if config_path else None

    async def read() -> dict[Any, Any]:
        async with _queue(manager, config) as pool:
            return await report_queue_status(manager, pool)

    statuses = asyncio.run(read())
    rows = [("queue", "queued", "in progress", "retrying", "dead", "oldest")]
    for state in statuses.values():
        rows.append((state.queue, str(state.queued), str(state.in_progress), str(state.retrying),
                     str(state.dead), f"{state.oldest_age:.1f} s"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:],
                                                                           strict=True)]
        click.echo("  ".join(cells))


@cli.command("requeue-dead")
@MANAGER
@CONFIG
@VERBOSE
def requeue_dead(manager_path: str, config_path: str | None, verbose: bool) -> None:
    """Enqueue the manager's dead-letter jobs again; each leaves the dead letters once queued."""
    from .fanout import deadletters
    from .fanout.worker import load_config, load_manager

    _log_to_stderr(verbose)
    manager = load_manager(manager_path)
    config = load_config(config_path) if config_path else None

    async def run() -> deadletters.RequeueReport:
        async with _queue(manager, config) as pool:
            return await deadletters.requeue(
                pool, manager.dead_letter_key, manager_path=manager.import_path,
                queue_names={p.value: name for p, name in manager.queue_names.items()},
            )

    report = asyncio.run(run())
    click.echo(f"requeued {report.requeued} dead jobs from {manager.dead_letter_key}")
    if report.still_queued:
        click.echo(f"left {report.still_queued} whose job is still queued or running; "
                   "run requeue-dead again once it is done")
    if report.other_manager:
        click.echo(f"left {report.other_manager} of other managers (or unreadable)")


@cli.command()
@click.option(
    "--feeds",
    "feed_paths",
    type=ImportPath(),
    multiple=True,
    required=True,
    help="Import path of a feed class, such as myapp.feeds:PinFeed; repeat or list several.",
)
@click.argument("more_feed_paths", nargs=-1, type=ImportPath(), metavar="[MODULE:CLASS]...")
def setup(feed_paths: tuple[str, ...], more_feed_paths: tuple[str, ...]) -> None:
    """Create what the feed classes' backends need (Cassandra tables); idempotent."""
    from . import aclose
    from . import setup as setup_feeds
    from .feeds.base import Feed

    classes = []
    for path in (*feed_paths, *more_feed_paths):
        feed_class = import_object(path)
        if not (isinstance(feed_class, type) and issubclass(feed_class, Feed)):
            raise click.BadParameter(f"{path!r} is not a feed class", param_hint="'--feeds'")
        classes.append(feed_class)

    async def run() -> None:
        try:
            await setup_feeds(*classes)
        finally:
            await aclose()

    asyncio.run(run())
    noun = "class" if len(classes) == 1 else "classes"
    click.echo(f"set up {len(classes)} feed {noun}: {', '.join(c.__name__ for c in classes)}")


class _queue:
    """``async with _queue(manager, config) as pool``: run the configuration, open the
    manager's queue, and close it and every feed client after."""

    def __init__(self, manager: Any, config: Callable[[], Any] | None) -> None:
        self.manager = manager
        self.config = config
        self.pool: Any = None

    async def __aenter__(self) -> Any:
        from .fanout.queue import create_queue, queue_settings
        from .fanout.worker import run_config

        await run_config(self.config)
        self.pool = await create_queue(queue_settings(self.manager.queue_url))
        return self.pool

    async def __aexit__(self, *exc: object) -> None:
        from . import aclose

        if self.pool is not None:
            await self.pool.aclose()
        await aclose()


def _log_to_stderr(verbose: bool) -> None:
    """Timestamped lines on stderr: asyncfeeds at INFO (DEBUG with -v), arq at WARNING (INFO)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("asyncfeeds").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("arq").setLevel(logging.INFO if verbose else logging.WARNING)


def _one_line(error: BaseException) -> str:
    """The error as one line; unexpected kinds keep their type name."""
    raw = error.format_message() if isinstance(error, click.ClickException) else str(error)
    text = " ".join(raw.split())
    expected = (AsyncFeedsError, ValueError, ImportError, OSError, click.ClickException)
    if isinstance(error, expected) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def main(args: Sequence[str] | None = None) -> None:
    """The console script: runs ``cli``; an error is one line on stderr and a non-zero exit."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # import paths are relative to where you run it
    try:
        code = cli.main(args=args, prog_name="asyncfeeds", standalone_mode=False)
    except click.UsageError as error:
        where = error.ctx.command_path if error.ctx is not None else "asyncfeeds"
        _fail(f"{_one_line(error)} (see '{where} --help')", error.exit_code)
    except click.ClickException as error:
        _fail(_one_line(error), error.exit_code)
    except (click.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except Exception as error:
        _fail(_one_line(error), 1)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
