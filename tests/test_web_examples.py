"""The web examples over real HTTP: uvicorn and aiohttp's server on loopback ports, real
Redis, real ``asyncfeeds worker`` processes, driven by httpx and aiohttp clients.

Each example runs once per module against the shared test Redis under a key and
queue prefix of its own; the outage tests run the app against a private
redis-server they stop.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from helpers import REDIS_URL
from private_servers import RedisProcess, free_port
from web_stack import (
    App,
    Process,
    app_env,
    drop_keys,
    eventually,
    namespace,
    next_event,
    stack,
    start_app,
    start_worker,
)

PINTEREST = "examples.pinterest.feeds"
NOTIFY = "examples.aiohttp_app"
NOTHING: list[str] = []


@pytest.fixture(scope="module")
def pinterest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """The FastAPI example on Redis with arq fanout, and one worker per priority."""
    logs, prefix = tmp_path_factory.mktemp("pinterest"), namespace()
    env = app_env(PINTEREST_BACKEND="redis", PINTEREST_FANOUT="arq", PINTEREST_REDIS_URL=REDIS_URL,
                  PINTEREST_NAMESPACE=prefix, PINTEREST_HEARTBEAT="0.5")
    workers = [start_worker(PINTEREST, "PinManager", p, env, logs / f"worker-{p}.log")
               for p in ("high", "low")]
    with stack(lambda: start_app("fastapi", env, logs / "app.log"), workers, REDIS_URL,
               prefix) as app:
        yield app


@pytest.fixture(scope="module")
def notify(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """The aiohttp example with arq fanout and a worker."""
    logs, prefix = tmp_path_factory.mktemp("notify"), namespace()
    env = app_env(NOTIFY_FANOUT="arq", NOTIFY_REDIS_URL=REDIS_URL, NOTIFY_NAMESPACE=prefix,
                  NOTIFY_HEARTBEAT="0.5")
    workers = [start_worker(NOTIFY, "NotifyManager", "high", env, logs / "worker.log")]
    with stack(lambda: start_app("aiohttp", env, logs / "app.log"), workers, REDIS_URL,
               prefix) as app:
        yield app


async def ids(client: httpx.AsyncClient, path: str, key: str = "activity_id") -> list[str]:
    response = await client.get(path, params={"limit": 100})
    assert response.status_code == 200, response.text
    return [item[key] for item in response.json()["items"]]


async def walk(client: httpx.AsyncClient, path: str, key: str, limit: int,
               meanwhile: Any) -> list[str]:
    """Every item of a feed by cursor pages, calling ``meanwhile()`` after each page."""
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(path, params=params)).json()
        seen += [item[key] for item in page["items"]]
        await meanwhile()
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


# -- FastAPI ---------------------------------------------------------------------------------


async def test_pins_reach_followers_through_both_priority_workers(pinterest: App) -> None:
    async with httpx.AsyncClient(base_url=pinterest.url) as client:
        health = (await client.get("/healthz")).json()
        assert health == {"status": "ok", "backend": "redis", "fanout": "arq"}
        for follower in (2, 3):
            assert (await client.put(f"/users/{follower}/following/1")).status_code == 204
        await client.get("/users/2/feed")  # 2 is active: high priority; 3 is not: low
        response = await client.post("/users/1/pins", json={"title": "Ramen", "board": "Food"})
        assert response.status_code == 201, response.text
        pin = response.json()
        assert pin["verb"] == "pin" and pin["extra_context"] == {"title": "Ramen", "board": "Food"}
        for follower in (2, 3):
            await eventually(partial(ids, client, f"/users/{follower}/feed"),
                             [pin["activity_id"]], explain=pinterest.logs)
        (group,) = (await client.get("/users/3/feed/aggregated")).json()["items"]
        assert (group["activity_count"], group["verb"]) == (1, "pin") and group["aggregated_id"]
        for worker in pinterest.workers:
            assert "try 1: add" in worker.output(), worker.output()

        assert (await client.delete("/users/3/following/1")).status_code == 204
        await eventually(lambda: ids(client, "/users/3/feed"), NOTHING)
        assert await ids(client, "/users/2/feed") == [pin["activity_id"]]

        (notice,) = (await client.get("/users/1/notifications")).json()["items"]
        assert (notice["verb"], notice["actor_count"], notice["is_seen"]) == ("follow", 2, False)
        assert (await client.put("/users/1/following/1")).status_code == 400
        assert (await client.post("/users/2/likes/999")).status_code == 404
        bad = await client.post("/users/1/pins", json={"title": "", "board": "Food"})
        assert bad.status_code == 422 and "title" in bad.text


async def test_cursor_pages_have_no_gaps_or_repeats_while_new_items_arrive(
    pinterest: App,
) -> None:
    author, reader = 10, 11
    async with httpx.AsyncClient(base_url=pinterest.url) as client:
        await client.put(f"/users/{reader}/following/{author}")

        async def pin(title: str) -> dict[str, Any]:
            response = await client.post(f"/users/{author}/pins",
                                         json={"title": title, "board": "Walk"})
            assert response.status_code == 201, response.text
            result: dict[str, Any] = response.json()
            return result

        pins = [await pin(f"pin {n}") for n in range(17)]
        newest_first = [p["activity_id"] for p in reversed(pins)]
        await eventually(lambda: ids(client, f"/users/{reader}/feed"), newest_first,
                         explain=pinterest.logs)

        async def another_pin() -> None:
            await pin("meanwhile")

        walked = await walk(client, f"/users/{reader}/feed", "activity_id", 4, another_pin)
        assert walked == newest_first

        for liked in pins[:9]:  # one notification group per liked pin
            await client.post(f"/users/{reader}/likes/{liked['object']}")
        path = f"/users/{author}/notifications"
        groups = await ids(client, path, "aggregated_id")
        assert len(groups) == 10  # 9 liked pins and the follow

        async def like_a_new_pin() -> None:
            await client.post(f"/users/{reader}/likes/{(await pin('liked'))['object']}")

        assert await walk(client, path, "aggregated_id", 3, like_a_new_pin) == groups

        flat_cursor = (await client.get(f"/users/{reader}/feed", params={"limit": 1})).json()
        for bad in ({"cursor": "not-a-cursor"}, {"cursor": flat_cursor["next_cursor"]}):
            response = await client.get(path, params=bad)
            assert response.status_code == 400, response.text
        assert (await client.get(path, params={"limit": 0})).status_code == 422


async def test_sse_and_websocket_send_counts_first_then_each_change(pinterest: App) -> None:
    author, fan = 20, 21
    async with httpx.AsyncClient(base_url=pinterest.url, timeout=10) as client:
        pin = (await client.post(f"/users/{author}/pins", json={"title": "Pho", "board": "F"}))
        async with client.stream("GET", f"/users/{author}/notifications/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            lines = events.aiter_lines()
            first = await next_event(lines)
            assert first == {"event": "counts",
                             "data": json.dumps({"unseen_count": 0, "unread_count": 0})}
            assert await next_event(lines) == {"comment": "heartbeat"}  # idle: still live
            await client.post(f"/users/{fan}/likes/{pin.json()['object']}")
            event = await next_event(lines)
            while event == {"comment": "heartbeat"}:
                event = await next_event(lines)
            assert json.loads(event["data"]) == {"unseen_count": 1, "unread_count": 1}

        ws_url = pinterest.url.replace("http", "ws") + f"/users/{author}/notifications/ws"
        async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as socket:
            assert await socket.receive_json(timeout=10) == {
                "type": "counts", "unseen_count": 1, "unread_count": 1}
            assert await socket.receive_json(timeout=10) == {"type": "heartbeat"}
            await client.post(f"/users/{author}/notifications/seen")
            message = await socket.receive_json(timeout=10)
            while message == {"type": "heartbeat"}:
                message = await socket.receive_json(timeout=10)
            assert message == {"type": "counts", "unseen_count": 0, "unread_count": 1}


# -- aiohttp ---------------------------------------------------------------------------------


async def texts(session: aiohttp.ClientSession, url: str) -> list[str]:
    async with session.get(url) as response:
        assert response.status == 200, await response.text()
        return [item["text"] for item in (await response.json())["items"]]


async def test_followers_hear_of_pins_from_the_worker_and_unfollow_removes_them(
    notify: App,
) -> None:
    url = notify.url
    async with aiohttp.ClientSession(url) as session:
        for fan in ("peter", "ann"):
            async with session.put(f"/users/{fan}/following/thierry") as response:
                assert response.status == 204
        async with session.post("/users/thierry/pins", json={"title": "Ramen"}) as response:
            assert response.status == 201
            ramen = (await response.json())["object"]
        await eventually(lambda: texts(session, "/users/peter/notifications"),
                         ["thierry pinned 'Ramen'"], explain=notify.logs)
        await session.post("/users/thierry/pins", json={"title": "Pho"})
        await eventually(lambda: texts(session, "/users/ann/notifications"),
                         ["thierry pinned 2 pins"], explain=notify.logs)
        assert "try 1: add" in notify.workers[0].output()

        for fan in ("peter", "ann", "bob", "zoe"):
            async with session.post(f"/users/{fan}/likes/{ramen}") as response:
                assert response.status == 201
        assert await texts(session, "/users/thierry/notifications") == [
            "zoe, bob and 2 others liked your pin 'Ramen'",
            "ann and peter started following you",
        ]

        async with session.delete("/users/ann/following/thierry") as response:
            assert response.status == 204
        await eventually(lambda: texts(session, "/users/ann/notifications"), NOTHING)
        assert await texts(session, "/users/peter/notifications") == ["thierry pinned 2 pins"]
        async with session.post("/users/zoe/pins", json={"title": ""}) as response:
            assert response.status == 422 and "title" in await response.text()


async def test_aiohttp_pages_badges_and_streams(notify: App) -> None:
    async with aiohttp.ClientSession(notify.url) as session:
        pins = []
        for n in range(7):
            async with session.post("/users/maria/pins", json={"title": f"p{n}"}) as response:
                pins.append((await response.json())["object"])
        for pin in pins:  # one group per liked pin
            await session.post(f"/users/lucas/likes/{pin}")
        async with session.get("/users/maria/notifications", params={"limit": 100}) as response:
            groups = [item["aggregated_id"] for item in (await response.json())["items"]]
        assert len(groups) == 7

        walked, cursor = [], None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            async with session.get("/users/maria/notifications", params=params) as response:
                page = await response.json()
            walked += [item["aggregated_id"] for item in page["items"]]
            async with session.post("/users/maria/pins", json={"title": "new"}) as response:
                await session.post(f"/users/lucas/likes/{(await response.json())['object']}")
            if (cursor := page["next_cursor"]) is None:
                break
        assert walked == groups

        async with session.get("/users/nina/badge") as events:
            assert events.headers["Content-Type"] == "text/event-stream"
            lines = lines_of(events)
            assert await next_event(lines) == {
                "event": "counts", "data": json.dumps({"unseen_count": 0, "unread_count": 0})}
            assert await next_event(lines) == {"comment": "heartbeat"}
            await session.put("/users/lucas/following/nina")
            event = await next_event(lines)
            while event == {"comment": "heartbeat"}:
                event = await next_event(lines)
            assert json.loads(event["data"]) == {"unseen_count": 1, "unread_count": 1}

        async with session.ws_connect("/users/nina/badge/ws") as socket:
            assert await socket.receive_json(timeout=10) == {
                "type": "counts", "unseen_count": 1, "unread_count": 1}
            assert await socket.receive_json(timeout=10) == {"type": "heartbeat"}
            await session.post("/users/nina/notifications/seen")
            message = await socket.receive_json(timeout=10)
            while message == {"type": "heartbeat"}:
                message = await socket.receive_json(timeout=10)
            assert message == {"type": "counts", "unseen_count": 0, "unread_count": 1}


async def lines_of(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    async for raw in response.content:
        yield raw.decode().rstrip("\r\n")


# -- outages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fastapi", "aiohttp"])
async def test_503_while_redis_is_down(kind: str, tmp_path: Path) -> None:
    server = RedisProcess(tmp_path / "redis")
    url = f"redis://127.0.0.1:{server.port}/0"
    try:
        if kind == "fastapi":
            env = app_env(PINTEREST_BACKEND="redis", PINTEREST_FANOUT="arq",
                          PINTEREST_REDIS_URL=url)
            paths = ["/healthz", "/users/1/feed", "/users/1/notifications/events"]
            write = ("/users/1/pins", {"title": "Ramen", "board": "Food"})
            socket = "/users/1/notifications/ws"
        else:
            env = app_env(NOTIFY_FANOUT="arq", NOTIFY_REDIS_URL=url)
            paths = ["/healthz", "/users/ann/notifications", "/users/ann/badge"]
            write = ("/users/ann/pins", {"title": "Ramen"})
            socket = "/users/ann/badge/ws"
        app = start_app(kind, env, tmp_path / "app.log")
    except BaseException:
        server.stop()
        raise
    try:
        server.stop()
        async with httpx.AsyncClient(base_url=app.url, timeout=20) as client:
            for path in paths:
                response = await client.get(path)
                assert response.status_code == 503, (path, response.text)
                assert response.headers["retry-after"] == "5"
            assert (await client.post(write[0], json=write[1])).status_code == 503
        async with aiohttp.ClientSession(app.url) as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(socket)
            assert refused.value.status == 503
    finally:
        app.process.stop()
    assert str(server.port) in app.process.output()  # the log names the server


# -- make run-example ------------------------------------------------------------------------


async def test_run_example_serves_with_workers_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    prefix, port = namespace(), free_port()
    env = app_env(PINTEREST_REDIS_URL=REDIS_URL, PINTEREST_NAMESPACE=prefix, PORT=str(port),
                  VENV=str(Path(sys.executable).parent.parent))
    script = Process(["bash", "scripts/run-example.sh"], env, tmp_path / "run.log",
                     new_session=True)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await eventually(partial(health, client), "ok", explain=script.output)
            await client.put("/users/2/following/1")
            pin = (await client.post("/users/1/pins", json={"title": "Ramen", "board": "F"}))
            await eventually(partial(ids, client, "/users/2/feed"), [pin.json()["activity_id"]],
                             explain=script.output)
        assert script.ctrl_c() == 130, script.output()
        await eventually(partial(asyncio.to_thread, script.group_alive), False,
                         explain=script.output)
    finally:
        script.kill_group()
        drop_keys(REDIS_URL, prefix)
    assert script.output().count("asyncfeeds worker stopped") == 2, script.output()
    assert "Application shutdown complete" in script.output()


async def health(client: httpx.AsyncClient) -> str:
    try:
        return str((await client.get("/healthz")).json()["status"])
    except httpx.TransportError as error:
        return repr(error)
