"""The README's Python blocks and the examples/ scripts run as written, so docs can't rot.

Each runs in a fresh subprocess on the memory backend: the README defines the
same verbs as the test suite, and a process of its own keeps both registries
clean.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib
import uuid
from pathlib import Path

import pytest
import yaml
from helpers import CASSANDRA_KEYSPACE, CASSANDRA_PORT, REDIS_URL, backends

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"
NOT_RUN = re.compile(r"^<!--\s*not run:.*-->\s*$")

# Runs blocks in order in one namespace and one event loop, with top-level await
# allowed (as in ``python -m asyncio``). Line numbers in tracebacks are the
# README's. Blocks marked "not run" only have their imports executed.
RUNNER = textwrap.dedent(
    """
    import ast, asyncio, inspect, json, sys, types

    async def main(blocks, filename):
        module = sys.modules["__readme__"] = types.ModuleType("__readme__")  # for pydantic
        namespace = module.__dict__
        for block in blocks:
            source = "\\n" * block["offset"] + block["code"]
            if not block["run"]:
                tree = ast.parse(source, filename)
                imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
                exec(compile(ast.Module(imports, []), filename, "exec"), namespace)
                continue
            code = compile(source, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            result = eval(code, namespace)
            if inspect.iscoroutine(result):
                await result

    asyncio.run(main(json.load(sys.stdin), sys.argv[1]))
    """
)


def python_blocks(markdown: str) -> list[dict]:
    """Every ```python block: its code, the line offset of its first line, and whether it runs."""
    lines = markdown.splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        if lines[index].strip() == "```python" and lines[index].startswith("```"):
            end = lines.index("```", index + 1)
            previous = next((line for line in reversed(lines[:index]) if line.strip()), "")
            blocks.append(
                {
                    "offset": index + 1,
                    "code": "\n".join(lines[index + 1 : end]) + "\n",
                    "run": not NOT_RUN.match(previous.strip()),
                }
            )
            index = end
        index += 1
    return blocks


def clean_env() -> dict[str, str]:
    """The environment without ASYNCFEEDS_* settings, so everything runs on defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ASYNCFEEDS_")}


def run_blocks(blocks: list[dict], filename: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, filename],
        input=json.dumps(blocks),
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=cwd,
        timeout=120,
    )


def test_readme_starts_with_the_two_commands_and_explains_the_concepts():
    text = README.read_text()
    first_block = text.split("```bash", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block and "make test" in first_block
    assert text.index("make demo") < text.index("## Concepts")
    for heading in (
        "### Activity and verb",
        "### Feed",
        "### Aggregated feed",
        "### Notification feed",
        "### Fanout, priorities and the manager",
        "### Workers",
        "## Configuration",
        "## Backends",
        "## Coming from Stream Framework",
        "## Development",
    ):
        assert f"\n{heading}\n" in text, heading


def test_readme_python_blocks_run_in_order_on_the_memory_backend(tmp_path):
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 10
    assert sum(not b["run"] for b in blocks) <= 2, "keep the README runnable"
    result = run_blocks(blocks, str(README), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "unknown verb 'teleport'" in result.stdout


def test_the_readme_runner_fails_on_a_broken_block_and_names_its_line(tmp_path):
    markdown = textwrap.dedent(
        """
        # doc

        ```python
        import asyncio
        value = await asyncio.sleep(0, result=41)
        ```

        <!-- not run: needs a server -->
        ```python
        from asyncio import sleep
        raise SystemExit("a not-run block must not run")
        ```

        ```python
        assert value + 1 == 43, "docs rotted"
        ```
        """
    )
    blocks = python_blocks(markdown)
    assert [b["run"] for b in blocks] == [True, False, True]
    result = run_blocks(blocks, "doc.md", tmp_path)
    assert result.returncode == 1
    assert 'File "doc.md", line 16' in result.stderr
    assert "docs rotted" in result.stderr
    missing = [{"offset": 0, "code": "from asyncfeeds import NoSuchThing\n", "run": False}]
    assert "NoSuchThing" in run_blocks(missing, "doc.md", tmp_path).stderr


def test_every_example_is_tested():
    examples = {
        p.name for p in EXAMPLES.iterdir()
        if p.suffix == ".py" or (p.is_dir() and not p.name.startswith((".", "_")))
    }
    # The web examples run over real HTTP in tests/test_web_examples.py.
    assert examples == {"quickstart.py", "aiohttp_app.py", "pinterest"}


def test_quickstart_example_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "flat: ['Pho', 'Kyoto']" in result.stdout
    assert "aggregated: 2 people pinned 3 pins" in result.stdout
    assert "notification: 2 people liked pin 100, read=False" in result.stdout


PINTEREST_EAGER = textwrap.dedent(
    """
    import os
    from fastapi.testclient import TestClient
    from examples.pinterest.app import app
    from examples.pinterest.feeds import FEED_CLASSES

    backend = os.environ["PINTEREST_BACKEND"]
    with TestClient(app) as client:
        health = client.get("/healthz").json()
        assert health == {"status": "ok", "backend": backend, "fanout": "eager"}, health
        assert client.put("/users/2/following/1").status_code == 204
        pin = client.post("/users/1/pins", json={"title": "Ramen", "board": "Food"}).json()
        page = client.get("/users/2/feed").json()  # eager: fanned out before the reply
        assert [a["activity_id"] for a in page["items"]] == [pin["activity_id"]], page
        (group,) = client.get("/users/2/feed/aggregated").json()["items"]
        assert group["activity_count"] == 1, group
        assert client.post(f"/users/2/likes/{pin['object']}").status_code == 201
        with client.websocket_connect("/users/1/notifications/ws") as socket:
            assert socket.receive_json() == {"type": "counts", "unseen_count": 2,
                                             "unread_count": 2}
        api = client.get("/openapi.json").json()
        feed = api["paths"]["/users/{user_id}/feed"]["get"]["responses"]["200"]
        assert feed["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Page_Activity_"}, feed
        assert "activity_id" in api["components"]["schemas"]["Activity"]["properties"]
        groups = api["components"]["schemas"]["NotificationActivity"]["properties"]
        assert {"aggregated_id", "is_seen", "actor_count"} <= set(groups)

        async def flush():
            for feed_class in FEED_CLASSES:
                await feed_class.flush()

        client.portal.call(flush)
    print("pinterest example ok")
    """
)


@pytest.mark.parametrize("backend", backends("memory", "redis", "cassandra"))
def test_pinterest_example_runs_eagerly_on_each_backend(backend):
    """Memory needs no server; PINTEREST_BACKEND switches the same app to Redis or Cassandra."""
    env = {
        **clean_env(),
        "PINTEREST_BACKEND": backend,
        "PINTEREST_NAMESPACE": f"examples-{uuid.uuid4().hex[:12]}",
        "PINTEREST_REDIS_URL": REDIS_URL,
        "PINTEREST_CASSANDRA_KEYSPACE": CASSANDRA_KEYSPACE,
        "ASYNCFEEDS_CASSANDRA_PORT": str(CASSANDRA_PORT),
    }
    result = subprocess.run(
        [sys.executable, "-c", PINTEREST_EAGER],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "pinterest example ok" in result.stdout


def test_web_frameworks_are_not_dependencies_of_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    web = ("fastapi", "starlette", "uvicorn", "aiohttp")
    assert not any(d.lower().startswith(web) for d in project["dependencies"])
    assert all(any(d.startswith(w) for d in project["optional-dependencies"]["examples"])
               for w in ("fastapi", "uvicorn", "aiohttp"))
    probe = (
        "import sys, asyncfeeds, asyncfeeds.cli, asyncfeeds.demo, asyncfeeds.testing; "
        "print(any(m in sys.modules for m in ('fastapi', 'starlette', 'uvicorn', 'aiohttp')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=clean_env(), timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_compose_runs_the_example_app_and_two_workers_only_with_the_app_profile():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    app = {name for name, service in services.items() if "app" in service.get("profiles", [])}
    assert app == {"web", "worker-high", "worker-low"}
    assert all("profiles" not in services[name] for name in services.keys() - app)
    script = (ROOT / "scripts" / "run-example.sh").read_text()
    for name in app:
        service = services[name]
        assert service["healthcheck"]["test"], name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert service["environment"]["PINTEREST_FANOUT"] == "arq", name
        assert service["build"]["dockerfile"] == "examples/Dockerfile", name
    for priority in ("high", "low"):
        command = services[f"worker-{priority}"]["command"]
        assert command[:2] == ["asyncfeeds", "worker"]
        assert f"--priority={priority}" in command
        assert services[f"worker-{priority}"]["healthcheck"]["test"][1:] == [*command, "--check"]
        for option in command[2:]:
            if option.startswith(("--manager=", "--config=")):
                assert option.split("=")[1] in script  # the same stack as make run-example
    assert "examples.pinterest.app:app" in services["web"]["command"]
    assert "examples.pinterest.app:app" in script
    for line in (EXAMPLES / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            assert all((ROOT / path).exists() for path in line.split()[1:-1]), line


def test_readme_testing_fixtures_pass_under_pytest(tmp_path):
    """The "Testing your app" section as a test module of a user's suite, run by pytest."""
    section = README.read_text().split("\n## Testing your app\n", 1)[1].split("\n## ", 1)[0]
    (tmp_path / "test_readme_app.py").write_text("".join(b["code"] for b in python_blocks(section)))
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    env = {**clean_env(), "TEST_REDIS_URL": REDIS_URL}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_readme_app.py"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout, result.stdout
