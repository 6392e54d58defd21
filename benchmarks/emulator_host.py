"""Run a DISEmulator in its own process and drive it over a pipe.

The benchmarks never share a process (or a GIL) with the server they send to: the emulator runs in a
child interpreter started with ``python -m benchmarks.emulator_host``, and the parent talks to it
through JSON lines on the child's stdin/stdout. The child only wraps the public ``DISEmulator``
API, so what the handler talks to is exactly the emulator the tests use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

REPO_ROOT = Path(__file__).resolve().parent.parent


def child_env() -> Dict[str, str]:
    """Return an environment in which ``python -m benchmarks...`` works from any directory.

    Returns:
        A copy of ``os.environ`` with the repository root first on ``PYTHONPATH``.
    """
    env = dict(os.environ)
    parts = [str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


class EmulatorProcess:
    """Parent-side handle of an emulator running in a child process.

    Use it as a context manager; every method is one request/reply over the pipe and raises
    ``RuntimeError`` when the child reports an error.
    """

    def __init__(self) -> None:
        self._proc: Optional[subprocess.Popen[str]] = None
        self.info: Dict[str, Any] = {}

    def __enter__(self) -> EmulatorProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.emulator_host"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
            cwd=str(REPO_ROOT),
        )
        self.info = self.call("info")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the emulator and wait for the child to exit (5 s, then kill)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None and proc.stdin is not None:
                proc.stdin.write(json.dumps({"op": "stop"}) + "\n")
                proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the child is already gone; the wait below reaps it
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def call(self, op: str, **args: Any) -> Dict[str, Any]:
        """Send one command and return its reply.

        Args:
            op: command name (see ``_dispatch`` in this module).
            **args: command arguments, JSON-serialisable.

        Returns:
            The reply object.

        Raises:
            RuntimeError: the child reported an error or exited.
        """
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise RuntimeError("emulator process is not running")
        proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"emulator process exited (code {proc.poll()})")
        reply: Dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"emulator {op}: {reply['error']}")
        return reply

    @property
    def url(self) -> str:
        """Base URL of the emulator, e.g. ``http://127.0.0.1:PORT``."""
        return str(self.info["url"])

    @property
    def project_id(self) -> str:
        """Project id the emulator accepts."""
        return str(self.info["project_id"])

    @property
    def ak(self) -> str:
        """Access key the emulator accepts."""
        return str(self.info["ak"])

    @property
    def sk(self) -> str:
        """Secret key the emulator accepts."""
        return str(self.info["sk"])

    def token(self) -> str:
        """Return a fresh X-Auth-Token issued by the emulator."""
        return str(self.call("issue_token")["token"])

    def create_stream(self, name: str, partitions: int = 1) -> None:
        """Create stream ``name`` with ``partitions`` partitions (default 1)."""
        self.call("create_stream", name=name, partitions=partitions)

    def delete_stream(self, name: str) -> None:
        """Delete stream ``name`` and free the emulator's memory for it."""
        self.call("delete_stream", name=name)

    def set_delay(self, seconds: float) -> None:
        """Delay every PutRecords reply by ``seconds`` (0 turns the delay off)."""
        self.call("set_delay", seconds=seconds)

    def wait_for(self, stream: str, n: int, timeout: float) -> float:
        """Wait until ``stream`` holds at least ``n`` records.

        Args:
            stream: stream name.
            n: record count to wait for.
            timeout: seconds to wait before giving up.

        Returns:
            ``time.monotonic()`` in the child when the count was reached; the clock is system-wide
            on Linux, so it compares with the parent's.

        Raises:
            RuntimeError: the count was not reached in time.
        """
        return float(self.call("wait_for", stream=stream, n=n, timeout=timeout)["monotonic"])

    def arrivals(self, stream: str) -> List[Tuple[str, int]]:
        """Return what ``stream`` holds and when each record was stored.

        Args:
            stream: stream name.

        Returns:
            ``(data decoded as UTF-8, store time in ms since the epoch)`` per record, in stored
            order.
        """
        reply = self.call("arrivals", stream=stream)
        return [(str(d), int(t)) for d, t in reply["records"]]


def _dispatch(emu: Any, cmd: Dict[str, Any]) -> Dict[str, Any]:
    op = cmd["op"]
    if op == "info":
        return {
            "url": emu.url,
            "project_id": emu.project_id,
            "ak": emu.ak,
            "sk": emu.sk,
            "pid": os.getpid(),
        }
    if op == "issue_token":
        return {"token": emu.issue_token()}
    if op == "create_stream":
        emu.create_stream(cmd["name"], partitions=cmd["partitions"])
        return {}
    if op == "delete_stream":
        emu.delete_stream(cmd["name"])
        emu.clear_requests()  # the request log would otherwise grow for the whole run
        return {}
    if op == "set_delay":
        if cmd["seconds"] > 0:
            emu.set_delay(cmd["seconds"], operation="PutRecords")
        else:
            emu.clear_faults()
        return {}
    if op == "wait_for":
        emu.wait_for(cmd["stream"], cmd["n"], timeout=cmd["timeout"])
        return {"monotonic": time.monotonic()}
    if op == "arrivals":
        records = emu.records(cmd["stream"])
        return {"records": [(r.data.decode("utf-8", "replace"), r.timestamp) for r in records]}
    raise ValueError(f"unknown op {op!r}")


def serve() -> int:
    """Child side: start a DISEmulator on 127.0.0.1 and answer commands from stdin until ``stop``.

    Returns:
        The process exit code.
    """
    from dis_logging.emulator import DISEmulator

    with DISEmulator(host="127.0.0.1", port=0) as emu:
        for line in sys.stdin:
            cmd = json.loads(line)
            if cmd["op"] == "stop":
                break
            try:
                reply = _dispatch(emu, cmd)
            except Exception as exc:  # reported to the parent, which raises it there
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(serve())
