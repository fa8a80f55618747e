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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"
NOT_RUN = re.compile(r"^<!--\s*not run:.*-->\s*$")

# Runs blocks in order in one namespace and one event loop, with top-level await
# allowed (as in ``python -m asyncio``). Line numbers in tracebacks are the
# README's. Blocks marked "not run" only have their imports executed.
RUNNER = textwrap.dedent(
    """
    import ast, asyncio, inspect, json, sys

    async def main(blocks, filename):
        namespace = {"__name__": "__readme__"}
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


def test_every_example_script_is_tested():
    tested = {"quickstart.py", "fastapi_app.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


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


FASTAPI_CLIENT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from fastapi.testclient import TestClient
    import fastapi_app

    with TestClient(fastapi_app.app) as client:
        assert client.post("/users/2/follow/1").status_code == 204
        assert client.post("/users/3/follow/1").status_code == 204
        for pin_id, title in ((10, "Ramen"), (11, "Kyoto")):
            response = client.post(
                "/users/1/pins", json={"pin_id": pin_id, "title": title, "board": "Cooking"}
            )
            assert response.status_code == 201, response.text

        page = client.get("/users/2/feed", params={"limit": 1}).json()
        assert [item["title"] for item in page["items"]] == ["Kyoto"], page
        rest = client.get("/users/2/feed", params={"before": page["next"]}).json()
        assert [item["title"] for item in rest["items"]] == ["Ramen"], rest
        assert rest["next"] is None

        (group,) = client.get("/users/3/feed/aggregated").json()["items"]
        assert group["activity_count"] == 2 and group["verb"] == "pinned", group

        assert client.post("/users/2/likes/10").status_code == 201
        assert client.post("/users/3/likes/10").status_code == 201
        inbox = client.get("/users/1/notifications").json()
        assert (inbox["unseen"], inbox["unread"]) == (2, 2), inbox
        likes = next(i for i in inbox["items"] if i["verb"] == "liked")
        assert likes["actors"] == [3, 2] and likes["titles"] == ["Ramen", "Ramen"], likes
        assert likes["is_seen"] is False and likes["is_read"] is False

        assert client.post("/users/1/notifications/seen").status_code == 204
        response = client.post("/users/1/notifications/read", json={"ids": [likes["id"]]})
        assert response.status_code == 204
        inbox = client.get("/users/1/notifications").json()
        assert (inbox["unseen"], inbox["unread"]) == (0, 1), inbox

        bad = client.post("/users/1/pins", json={"pin_id": 12, "title": "", "board": "x"})
        assert bad.status_code == 422 and "title" in bad.text
        again = client.post("/users/1/pins", json={"pin_id": 10, "title": "x", "board": "x"})
        assert again.status_code == 409
        assert client.post("/users/2/likes/999").status_code == 404
        assert client.post("/users/2/follow/2").status_code == 400

        assert client.delete("/users/2/follow/1").status_code == 204
        assert client.get("/users/2/feed").json()["items"] == []
    print("fastapi example ok")
    """
)


def test_fastapi_example_serves_feeds_and_notifications(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", FASTAPI_CLIENT, str(EXAMPLES)],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "fastapi example ok" in result.stdout


def test_fastapi_is_not_a_dependency_of_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.lower().startswith(("fastapi", "starlette")) for d in project["dependencies"])
    probe = (
        "import sys, asyncfeeds, asyncfeeds.cli, asyncfeeds.demo; print('fastapi' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=clean_env(), timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
