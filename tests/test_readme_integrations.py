"""The README's integration setups, copied as they are, ship what the README says they ship.

Each ```python block is run verbatim in a subprocess whose environment points the README's region
(``cn-north-4``) at the emulator, followed by a few lines that drive it the way an application
would (a route, two requests, a flush). The emulator then holds the records.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable, Dict, List

import pytest

from dis_logging.emulator import DISEmulator

README = Path(__file__).resolve().parent.parent / "README.md"
STREAM = "app-logs"  # the stream name the README's snippets use


def readme_block(heading: str) -> str:
    """The first ```python block after ``heading`` in the README, verbatim."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```\n", start)]


@pytest.fixture
def run_snippet(service_env: Callable[..., Dict[str, str]]) -> Callable[[str], None]:
    """Run code in a fresh interpreter with the environment of a deployed service."""

    def run(code: str) -> None:
        env = service_env()
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
        assert 0 == result.returncode, result.stdout + result.stderr

    return run


def stored(emulator: DISEmulator, count: int) -> Dict[str, Dict[str, object]]:
    """The stored records by message, once ``count`` of them are there."""
    events: List[Dict[str, object]] = [
        json.loads(r.data) for r in emulator.wait_for(STREAM, count, timeout=10.0)
    ]
    return {str(e["message"]): e for e in events}


@pytest.fixture
def readme_stream(emulator: DISEmulator) -> str:
    emulator.create_stream(STREAM, partitions=1)
    return STREAM


def test_fastapi_setup(emulator, readme_stream, run_snippet):
    """The FastAPI block ships the endpoint's WARNING and one access record per request."""
    driver = textwrap.dedent(
        """
        from starlette.testclient import TestClient

        @api.get("/items/{item_id}")
        async def item(item_id: int):
            logging.getLogger("shop").warning("item %d", item_id)
            return {"item_id": item_id}

        client = TestClient(app)
        reply = client.get("/items/1", headers={"X-Request-ID": "r-1"})
        assert "r-1" == reply.headers["x-request-id"]
        assert handler.flush(10.0)
        """
    )
    run_snippet(readme_block("## FastAPI, Starlette") + driver)
    by_message = stored(emulator, 2)
    access = by_message["GET /items/1 200"]
    assert ("app.access", "INFO", "r-1", 200) == (
        access["logger"],
        access["level"],
        access["request_id"],
        access["status_code"],
    )
    assert ("r-1", "/items/1") == (
        by_message["item 1"]["request_id"],
        by_message["item 1"]["http_path"],
    )


def test_flask_setup(emulator, readme_stream, run_snippet):
    """The Flask block ships the view's WARNING and one access record per request."""
    driver = textwrap.dedent(
        """
        @app.get("/orders/<int:order_id>")
        def order(order_id):
            logging.getLogger("shop").warning("order %d", order_id)
            return {"order_id": order_id}

        client = app.test_client()
        reply = client.get("/orders/1", headers={"X-Request-ID": "f-1"})
        assert "f-1" == reply.headers["X-Request-ID"]
        assert handler.flush(10.0)
        """
    )
    run_snippet(readme_block("## Flask") + driver)
    by_message = stored(emulator, 2)
    access = by_message["GET /orders/1 200"]
    assert ("app.access", "INFO", "f-1", 200) == (
        access["logger"],
        access["level"],
        access["request_id"],
        access["status_code"],
    )
    assert "f-1" == by_message["order 1"]["request_id"]


def test_loguru_setup(emulator, readme_stream, run_snippet):
    """The Loguru block ships its message with the bound field before remove() returns."""
    run_snippet(readme_block("## Loguru"))
    (event,) = stored(emulator, 1).values()
    assert ("order 42 paid", "INFO", {"order_id": 42}) == (
        event["message"],
        event["level"],
        event["extra"],
    )
