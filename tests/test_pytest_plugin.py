"""Tests for dis_logging.pytest_plugin: the dis_emulator, dis_stream and dis_handler fixtures."""

from __future__ import annotations

import subprocess
import sys

pytest_plugins = ["pytester"]

# Inner runs skip plugins the behaviour under test does not need: pytester restores
# sys.modules after each run, so hypothesis' plugin would be imported anew every time.
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def test_plugin_is_registered_as_an_entry_point(pytester):
    """Installing dis-logging makes the fixtures available without any conftest."""
    result = pytester.runpytest("--fixtures", *QUIET)
    result.stdout.fnmatch_lines(["*dis_emulator*", "*dis_handler*", "*dis_stream*"])


def test_dis_handler_ships_to_dis_emulator(pytester):
    """A test using dis_handler finds its records in dis_emulator's fresh stream."""
    pytester.makepyfile(
        """
        import json
        import logging

        def test_logs(dis_emulator, dis_stream, dis_handler):
            logger = logging.getLogger("app")
            logger.setLevel(logging.INFO)
            logger.addHandler(dis_handler)
            logger.info("order %d placed", 42, extra={"order_id": 42})
            assert dis_handler.flush(timeout=5)
            [record] = dis_emulator.records(dis_stream)
            event = json.loads(record.data)
            assert (event["message"], event["order_id"]) == ("order 42 placed", 42)

        def test_fresh_stream(dis_emulator, dis_stream):
            assert dis_emulator.records(dis_stream) == []
        """
    )
    result = pytester.runpytest(*QUIET, "-W", "error")
    result.assert_outcomes(passed=2)


def test_dis_handler_is_closed_and_detached(pytester):
    """After the test the handler is closed and removed from the loggers it was added to."""
    pytester.makepyfile(
        """
        import logging

        seen = []

        def test_uses_handler(dis_handler):
            logging.getLogger("app").addHandler(dis_handler)
            logging.getLogger().addHandler(dis_handler)
            seen.append(dis_handler)

        def test_afterwards():
            [handler] = seen
            assert handler not in logging.getLogger("app").handlers
            assert handler not in logging.getLogger().handlers
        """
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=2)


def test_dis_emulator_stops_after_the_test(pytester):
    """The emulator refuses connections once its test is over."""
    pytester.makepyfile(
        """
        import socket

        urls = []

        def test_uses_emulator(dis_emulator):
            urls.append(dis_emulator.url)

        def test_afterwards():
            host, port = urls[0].rsplit("/", 1)[1].split(":")
            with socket.socket() as sock:
                assert sock.connect_ex((host, int(port))) != 0
        """
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=2)


def test_plugin_import_is_cheap():
    """Importing the plugin loads neither the emulator nor the handler."""
    code = (
        "import sys, dis_logging.pytest_plugin; "
        "print(sorted(m for m in ('dis_logging.emulator', 'dis_logging.handler', "
        "'dis_logging.client') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "[]" == result.stdout.strip()


def _readme_block(heading: str) -> str:
    """The first ```python block after ``heading`` in the README, verbatim."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```\n", start)]


def test_readme_snippet_passes_verbatim_for_info_records(pytester):
    """The README's pytest example, copied as it is, passes for code that logs at INFO."""
    pytester.makepyfile(test_readme_example=_readme_block("## Testing your own logging"))
    result = pytester.runpytest(*QUIET, "-W", "error")
    result.assert_outcomes(passed=1)
