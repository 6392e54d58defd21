"""Tests of the `dis-logging emulator` command line and `python -m dis_logging.emulator`."""

from __future__ import annotations

import argparse
import io
import signal
import socket
import subprocess
import sys
import time
from typing import Iterator, List

import pytest
import requests

from dis_logging.emulator import DISEmulator, cli


def parse(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def started() -> Iterator[List[DISEmulator]]:
    running: List[DISEmulator] = []
    yield running
    for emu in running:
        emu.stop()


def start(started: List[DISEmulator], argv: List[str]) -> DISEmulator:
    emu = cli.start(parse(["--port", "0", *argv]))
    started.append(emu)
    return emu


def put(emu: DISEmulator, stream: str) -> requests.Response:
    with requests.Session() as session:
        return session.post(
            f"{emu.url}/v2/{emu.project_id}/records",
            json={"stream_name": stream, "records": [{"data": "eA=="}]},
            headers={"X-Auth-Token": emu.issue_token()},
            timeout=10,
        )


class TestParsing:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("logs", ("logs", 1, "COMMON")),
            ("logs:4", ("logs", 4, "COMMON")),
            ("big:2:advanced", ("big", 2, "ADVANCED")),
        ],
    )
    def test_stream_specs(self, text, expected):
        """NAME[:PARTITIONS[:TYPE]] parses into name, partition count and type."""
        assert expected == cli.parse_stream(text)

    @pytest.mark.parametrize("text", ["", ":2", "logs:x", "logs:0", "logs:1:FAST"])
    def test_bad_stream_specs(self, text):
        """Malformed stream specs are rejected."""
        with pytest.raises(argparse.ArgumentTypeError):
            cli.parse_stream(text)

    @pytest.mark.parametrize(
        "argv", [["--fail-rate", "2"], ["--delay", "-1"], ["--record-fail-fraction", "x"]]
    )
    def test_bad_fault_flags_exit(self, argv, capsys):
        """Out-of-range fault flags are argument errors."""
        with pytest.raises(SystemExit):
            parse(argv)

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["--port", "-1"], "argument --port: must be a port from 0 to 65535, got '-1'"),
            (["--port", "70000"], "argument --port: must be a port from 0 to 65535"),
            (["--token-ttl", "inf"], "argument --token-ttl: must be from 0 to 315360000"),
            (["--token-ttl", "nan"], "argument --token-ttl: must be from 0 to 315360000"),
            (["--token-ttl", "1e12"], "argument --token-ttl: must be from 0 to 315360000"),
            # Values no client could use: the region names the IAM project and the banner's
            # HUAWEICLOUD_SDK_REGION_DIS_* variable, the project id a path segment.
            (["--region", "CN North 4"], "argument --region: must be a region id"),
            (["--project-id", "a/b"], "argument --project-id: must be 1-64 letters"),
            (["--ak", "my key"], "argument --ak: must be printable ASCII without spaces"),
            # A wait no timer can hold: threading.Event.wait raised OverflowError (a traceback).
            (["--duration", "inf"], "argument --duration: must be between 0 and 1000000 seconds"),
            (["--duration", "1e300"], "argument --duration: must be between 0 and 1000000"),
            (["--delay", "inf"], "argument --delay: must be between 0 and 1000000 seconds"),
        ],
    )
    def test_out_of_range_port_and_token_lifetime_are_usage_errors(self, argv, message, capsys):
        """A port outside 0-65535 or a token lifetime no token can have is exit 2 with one line
        (a bad port raised OverflowError from bind; an infinite lifetime answered every login
        with 500)."""
        from dis_logging import cli as main_cli

        code = main_cli.main(["emulator", *argv, "--duration", "0"])
        err = capsys.readouterr().err
        assert 2 == code
        assert message in err
        assert "Traceback" not in err

    def test_defaults_match_the_emulator(self):
        """Default credentials on the command line are the emulator's defaults."""
        args = parse([])
        emu = DISEmulator()
        assert (emu.project_id, emu.ak, emu.sk, emu.username, 8080) == (
            args.project_id,
            args.ak,
            args.sk,
            args.username,
            args.port,
        )


class TestStart:
    def test_streams_and_credentials(self, started):
        """--stream creates streams and credential flags configure the emulator."""
        emu = start(
            started, ["--stream", "a:3", "--stream", "b", "--ak", "MYAK", "--project-id", "p1"]
        )
        assert (["a", "b"], "MYAK", "p1") == (emu.stream_names(), emu.ak, emu.project_id)

    def test_fail_rate_flag(self, started):
        """--fail-rate 1 answers every PutRecords with 500."""
        emu = start(started, ["--stream", "s", "--fail-rate", "1"])
        assert 500 == put(emu, "s").status_code

    def test_record_fail_fraction_flag(self, started):
        """--record-fail-fraction 1 fails every record with DIS.4303."""
        emu = start(started, ["--stream", "s", "--record-fail-fraction", "1"])
        assert 1 == put(emu, "s").json()["failed_record_count"]

    def test_rate_limits_flag(self, started):
        """--rate-limits enforces per-partition write limits."""
        emu = start(started, ["--stream", "s", "--rate-limits"])
        with requests.Session() as session:
            reply = session.post(
                f"{emu.url}/v2/{emu.project_id}/records",
                json={"stream_name": "s", "records": [{"data": "eA=="}] * 1001},
                headers={"X-Auth-Token": emu.issue_token()},
            )
        assert 1 == reply.json()["failed_record_count"]

    def test_delay_flag(self, started):
        """--delay delays every reply by the given seconds."""
        emu = start(started, ["--stream", "s", "--delay", "0.2"])
        began = time.perf_counter()
        put(emu, "s")
        assert time.perf_counter() - began >= 0.2

    def test_token_ttl_flag(self, started):
        """--token-ttl sets the lifetime of issued tokens."""
        assert 60.0 == start(started, ["--token-ttl", "60"]).token_ttl

    def test_token_ttl_sets_metadata_credential_lifetime(self, started):
        """The metadata route's temporary credentials expire after --token-ttl seconds."""
        from dis_logging.auth import parse_metadata_credentials

        emu = start(started, ["--token-ttl", "90"])
        before = time.time()
        with requests.Session() as session:
            reply = session.get(emu.metadata_endpoint + emu.metadata_path, timeout=10.0)
        expires_at = parse_metadata_credentials(reply.json()).expires_at
        assert 200 == reply.status_code
        assert before + 89.0 <= expires_at <= time.time() + 90.0


class TestRun:
    def test_banner_and_clean_exit(self):
        """run prints the URL and dev credentials, then returns 0 after --duration."""
        out = io.StringIO()
        code = cli.run(parse(["--port", "0", "--stream", "logs:2", "--duration", "0"]), out=out)
        text = out.getvalue()
        assert (0, True, True, True) == (
            code,
            "DIS emulator listening on http://127.0.0.1:" in text,
            "EXAMPLEAK0000000001" in text and "dis-password" in text,
            "logs (2 partitions, COMMON)" in text,
        )

    @pytest.mark.parametrize(
        ("host", "warned"),
        [
            ("127.0.0.1", False),
            ("127.0.0.2", False),
            ("localhost", False),
            ("::1", False),
            ("[::1]", False),
            ("0.0.0.0", True),
            ("::", True),
            ("192.168.1.10", True),
            ("devbox.example.com", True),
        ],
    )
    def test_a_host_beyond_loopback_is_warned_about(self, host, warned):
        """Binding beyond loopback exposes the published credentials: the command says so
        (it printed only the loopback URL clients use, as if nothing else could reach it)."""
        warning = cli.exposure_warning(host)
        assert warned == (warning is not None)
        if warning is not None:
            assert warning.startswith(f"dis-logging emulator: warning: listening on {host}")

    def test_a_loopback_run_prints_no_warning(self, capsys):
        """The default host prints the banner and no warning."""
        assert 0 == cli.run(parse(["--port", "0", "--duration", "0"]), out=io.StringIO())
        assert "warning" not in capsys.readouterr().err

    def test_busy_port_exits_1(self, capsys):
        """run returns 1 with a message when the port is taken."""
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            code = cli.run(parse(["--port", str(busy.getsockname()[1]), "--duration", "0"]))
        assert (1, True) == (code, "dis-logging emulator:" in capsys.readouterr().err)

    @pytest.mark.parametrize(
        ("streams", "message"),
        [
            (["--stream", "a", "--stream", "a"], "already exists"),
            (["--stream", "bad name"], "Invalid stream_name"),
            (["--stream", "a:6", "--partition-quota", "5"], "quota"),
        ],
    )
    def test_invalid_stream_exits_2(self, capsys, streams, message):
        """run returns 2 (a bad value, as in every command) with one line naming the problem."""
        code = cli.run(parse(["--port", "0", *streams, "--duration", "0"]))
        err = capsys.readouterr().err
        assert (2, True, 1) == (code, message in err, len(err.strip().splitlines()))

    def test_module_entry_point(self):
        """python -m dis_logging.emulator runs and exits 0."""
        done = subprocess.run(
            [sys.executable, "-m", "dis_logging.emulator", "--port", "0", "--duration", "0"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (0, "DIS emulator stopped.") == (
            done.returncode,
            done.stdout.strip().splitlines()[-1],
        )

    @pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
    def test_interrupt_stops_cleanly(self, signum):
        """Ctrl-C (SIGINT) or SIGTERM stops the command with exit code 0."""
        with subprocess.Popen(
            [sys.executable, "-m", "dis_logging.emulator", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            for line in proc.stdout:
                if line.startswith("Press Ctrl-C"):
                    break
            proc.send_signal(signum)
            rest, err = proc.communicate(timeout=30)
        assert (0, True, "DIS emulator stopped.", "") == (
            proc.returncode,
            first.startswith("DIS emulator listening"),
            rest.strip(),
            err,
        )

    def test_a_reader_that_goes_away_does_not_end_in_a_traceback(self):
        """Once the reader of its output has gone (``| head``), the command exits 0, silently."""
        with subprocess.Popen(
            [sys.executable, "-m", "dis_logging.emulator", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stdout is not None
            assert proc.stderr is not None
            for line in proc.stdout:
                if line.startswith("Press Ctrl-C"):
                    break
            proc.stdout.close()
            proc.send_signal(signal.SIGTERM)
            err = proc.stderr.read()
            proc.wait(timeout=30)
        assert (0, "") == (proc.returncode, err)

    def test_an_ipv6_host_in_brackets(self, started):
        """``--host [::1]``, written as in a URL, binds the IPv6 loopback."""
        emu = start(started, ["--host", "[::1]", "--stream", "s"])
        assert (f"http://[::1]:{emu.port}", 200) == (emu.url, put(emu, "s").status_code)
