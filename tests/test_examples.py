"""Each script under examples/ runs once, in a subprocess, against the emulator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def example_env(service_env):
    """The environment of a deployed service for an example: the emulator, ``stream``, and
    unbuffered output."""
    return lambda stream: service_env(DIS_LOGGING_STREAM=stream, PYTHONUNBUFFERED="1")


def run_example(args, env, cwd=EXAMPLES):
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert 0 == result.returncode, result.stdout + result.stderr
    return result


def messages(emulator, stream, count):
    return sorted(
        json.loads(record.data).get("message") or json.loads(record.data).get("event")
        for record in emulator.wait_for(stream, count, timeout=10.0)
    )


def test_plain_logging(emulator, stream, example_env):
    """plain_logging.py ships its three records, including the traceback."""
    run_example(["plain_logging.py", stream], example_env(stream))
    events = [json.loads(r.data) for r in emulator.wait_for(stream, 3)]
    assert ["disk 91% full", "division failed", "user alice logged in"] == sorted(
        e["message"] for e in events
    )
    assert {"plain-example"} == {e["service"] for e in events}


def test_dict_config(emulator, stream, example_env):
    """dict_config.py ships six records with the renamed timestamp and static fields."""
    run_example(["dict_config.py", stream], example_env(stream))
    events = [json.loads(r.data) for r in emulator.wait_for(stream, 6)]
    assert 6 == len(events)
    assert {("orders", "staging")} == {(e["service"], e["env"]) for e in events}
    assert all("@timestamp" in e for e in events)


def test_file_config(emulator, stream, example_env):
    """file_config.py configures the handler from the INI file and ships two records."""
    run_example(["file_config.py", stream], example_env(stream))
    assert ["configured from file_config.ini", "stock low"] == messages(emulator, stream, 2)


def test_structlog_example(emulator, stream, example_env):
    """structlog_example.py ships three events and still prints them on the console."""
    result = run_example(["structlog_example.py", stream], example_env(stream))
    assert "cart viewed" in result.stdout
    events = [json.loads(r.data) for r in emulator.wait_for(stream, 3)]
    assert ["cart viewed", "coupon rejected", "lookup failed"] == sorted(e["event"] for e in events)
    assert {"req-1"} == {e["request_id"] for e in events}


def test_emulator_roundtrip(emulator, example_env):
    """emulator_roundtrip.py needs nothing but itself and reads its records back."""
    result = run_example(["emulator_roundtrip.py"], example_env("unused"))
    assert "read back 10 records" in result.stdout


@pytest.mark.parametrize("command", [["manage.py", "check"], ["manage.py", "check", "--deploy"]])
def test_django_project_checks(emulator, stream, command, example_env):
    """The example Django project passes manage.py check, plain and --deploy modulo security."""
    result = subprocess.run(
        [sys.executable, *command],
        cwd=EXAMPLES / "django_project",
        env=example_env(stream),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "dis_logging." not in result.stdout + result.stderr


def test_django_project_view(emulator, stream, example_env):
    """A request to the example project's view ships a record with its request id."""
    code = (
        "from django.test import Client; "
        "r = Client().get('/hello/?name=example', HTTP_X_REQUEST_ID='example-1'); "
        "print(r.status_code)"
    )
    env = example_env(stream)
    env["DJANGO_SETTINGS_MODULE"] = "mysite.settings"
    result = run_example(["manage.py", "shell", "-c", code], env, cwd=EXAMPLES / "django_project")
    assert "200" in result.stdout
    events = [json.loads(r.data) for r in emulator.wait_for(stream, 2)]
    [view] = [e for e in events if e["message"] == "saying hello to example"]
    assert ("example-1", "GET", "/hello/", "mysite", "example") == (
        view["request_id"],
        view["http_method"],
        view["http_path"],
        view["service"],
        view["visitor"],
    )
