"""Tests for dis_logging.cli: the dis-logging command line against a real emulator."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List

import pytest

from dis_logging import cli
from dis_logging.client import DISClient
from dis_logging.emulator import DISEmulator

COMMANDS = ["emulator", "demo", "tail", "send", "check"]


#: A directory for the secret files the connection flags name (set per test).
SECRET_DIRS: List[Path] = []


@pytest.fixture(autouse=True)
def _secret_dir(tmp_path):
    SECRET_DIRS[:] = [tmp_path]
    yield
    SECRET_DIRS.clear()


def connection_args(emulator, **overrides):
    """Connection flags for the emulator; the SK goes through --sk-file, as users should pass it."""
    sk_file = SECRET_DIRS[0] / "sk"
    sk_file.write_text(emulator.sk + "\n", encoding="utf-8")
    values = {
        "--endpoint": emulator.url,
        "--project-id": emulator.project_id,
        "--ak": emulator.ak,
        "--sk-file": str(sk_file),
    }
    if "--sk" in overrides:
        del values["--sk-file"]
    values.update(overrides)
    return [item for pair in values.items() for item in pair]


@pytest.fixture
def client(emulator):
    client = DISClient(
        emulator.url, emulator.project_id, region=emulator.region, ak=emulator.ak, sk=emulator.sk
    )
    yield client
    client.close()


def put(client, stream, *entries):
    result = client.put_records(stream, list(entries))
    assert result.ok
    return result


def run(capsys, *argv):
    """Run main and return (exit code, stdout, stderr)."""
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_demo_beyond_the_partition_quota_is_a_usage_error(capsys):
    """demo --partitions above the emulator's quota exits 2 with one line, no traceback."""
    code, out, err = run(capsys, "demo", "--partitions", "100")
    assert (2, "", True, 1) == (code, out, "quota" in err, len(err.strip().splitlines()))


class TTY(io.StringIO):
    def isatty(self):
        return True


class TestMain:
    @pytest.mark.parametrize("command", COMMANDS)
    def test_every_command_has_help(self, capsys, command):
        """--help on each command prints its usage and exits 0."""
        code, out, _ = run(capsys, command, "--help")
        assert (0, True) == (code, out.startswith(f"usage: dis-logging {command}"))

    def test_without_a_command_prints_usage_and_exits_2(self, capsys):
        """No command is a usage error: help on stderr, exit 2."""
        code, out, err = run(capsys)
        assert (2, "") == (code, out)
        assert err.startswith("usage: dis-logging")

    def test_unknown_option_exits_2(self, capsys):
        """An unknown option is a usage error with exit 2."""
        code, _, err = run(capsys, "tail", "s", "--bogus")
        assert 2 == code
        assert "unrecognized arguments: --bogus" in err

    def test_version(self, capsys):
        """--version prints the package version."""
        from dis_logging import __version__

        assert (0, f"dis-logging {__version__}\n") == run(capsys, "--version")[:2]

    def test_python_m_runs_the_command_line(self):
        """python -m dis_logging is the same command line."""
        result = subprocess.run(
            [sys.executable, "-m", "dis_logging", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (0, True) == (result.returncode, "tail" in result.stdout)

    def test_missing_configuration_is_one_line_and_exit_2(self, capsys):
        """Without credentials a command fails with one line naming the setting, exit 2."""
        code, out, err = run(
            capsys, "tail", "s", "--endpoint", "http://127.0.0.1:9", "--project-id", "p"
        )
        assert (2, "") == (code, out)
        assert 1 == len(err.splitlines())
        assert err.startswith("dis-logging: error: ")

    def test_conflicting_credentials_are_a_config_error(self, capsys, emulator):
        """AK/SK together with a user name is a configuration error, exit 2."""
        code, _, err = run(capsys, "tail", "s", *connection_args(emulator), "--username", "u")
        assert 2 == code
        assert "conflicts" in err


class TestEmulatorCommand:
    def test_runs_for_a_duration_and_prints_the_banner(self, capsys):
        """The emulator command serves until --duration ends and prints how to connect."""
        code, out, _ = run(
            capsys, "emulator", "--port", "0", "--stream", "logs:2", "--duration", "0.1"
        )
        assert 0 == code
        assert "DIS emulator listening on http://127.0.0.1:" in out
        assert "logs (2 partitions, COMMON)" in out


class _FixedReply:
    """A loopback server answering every request with one JSON body and status; by default
    400 with escape sequences in its error text."""

    def __init__(self, reply: object = None, status: int = 400) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        if reply is None:
            reply = {"error_code": "DIS.4200", "error_msg": "gone \x1b]0;retitled\x07\u202e"}

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                return

            def _answer(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5.0)


@pytest.mark.parametrize("command", [["tail", "s"], ["check", "s"], ["send", "s", "-"]])
def test_server_text_is_escaped_in_errors(capsys, monkeypatch, command):
    """A server's error text reaches the terminal with its escape sequences and bidirectional
    overrides written as escapes, in every command's error and check lines."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x\n")))
    server = _FixedReply()
    try:
        code, out, err = run(
            capsys, *command, "--endpoint", server.url, "--project-id", "p", "--token", "t0ken"
        )
    finally:
        server.close()
    assert 1 == code
    assert "\x1b" not in out + err
    assert "\u202e" not in out + err
    assert "gone \\x1b]0;retitled\\x07\\u202e" in out + err


class TestTail:
    def test_prints_records_of_every_partition(self, capsys, emulator, stream, client):
        """Records from both partitions are printed, JSON pretty-printed under a header."""
        put(client, stream, (b'{"msg": "first"}', "k1"), (b'{"msg": "second"}', "hello"))
        code, out, err = run(capsys, "tail", stream, *connection_args(emulator))
        assert (0, "") == (code, err)
        assert '  "msg": "first"' in out
        assert '  "msg": "second"' in out
        assert {"shardId-0000000000", "shardId-0000000001"} == {
            line.split()[1] for line in out.splitlines() if line.startswith("--- ")
        }

    def test_json_output_has_one_object_per_record(self, capsys, emulator, stream, client):
        """--output json prints one object per line with the partition, key and parsed data."""
        put(client, stream, (b'{"n": 1}', "k1"))
        code, out, _ = run(capsys, "tail", stream, "--output", "json", *connection_args(emulator))
        [line] = out.splitlines()
        record = json.loads(line)
        assert (0, "shardId-0000000000", "k1", {"n": 1}, "0") == (
            code,
            record["partition_id"],
            record["partition_key"],
            record["data"],
            record["sequence_number"],
        )

    def test_raw_output_prints_text_as_is(self, capsys, emulator, stream, client):
        """--output raw prints the data only, also when it is not JSON."""
        put(client, stream, (b"plain text line", "k1"))
        assert (0, "plain text line\n") == run(
            capsys, "tail", stream, "--output", "raw", *connection_args(emulator)
        )[:2]

    def test_pretty_output_escapes_what_a_terminal_would_act_on(
        self, capsys, emulator, stream, client
    ):
        """Escape sequences and bidirectional overrides in a record (anything logged, such as a
        client's user agent) are written as escapes in the default output; newlines and tabs
        stay, and --output raw still prints the data as it is."""
        put(
            client,
            stream,
            (b"\x1b]0;retitled\x07\x1b[31mred\tcell\nnext", "k1"),
            (b'{"agent": "\\u001b[2J\\u202eevil"}', "k1"),
        )
        code, out, _ = run(capsys, "tail", stream, *connection_args(emulator))
        assert 0 == code
        assert "\x1b" not in out
        assert "\u202e" not in out
        assert "\\x1b]0;retitled\\x07\\x1b[31mred\tcell\nnext" in out
        assert '"agent": "\\u001b[2J\\u202eevil"' in out  # JSON's escape, then ours
        raw = run(capsys, "tail", stream, "--output", "raw", *connection_args(emulator))[1]
        assert raw.startswith("\x1b]0;retitled\x07")

    @pytest.mark.parametrize("mode", ["json", "pretty", "raw"])
    def test_a_lone_surrogate_escape_is_printed_without_a_traceback(
        self, capsys, emulator, stream, client, mode
    ):
        """A record whose JSON holds "\\ud800" (valid JSON, no valid UTF-8 once parsed) is
        printed, as a JSON escape again with --output json, instead of ending with a traceback."""
        put(client, stream, (b'{"a": "\\ud800"}', "k1"))
        code, out, _ = run(capsys, "tail", stream, "--output", mode, *connection_args(emulator))
        assert 0 == code
        if mode == "json":
            assert {"a": "\ud800"} == json.loads(out)["data"]
        else:
            assert "ud800" in out

    def test_an_output_that_cannot_encode_a_character_gets_an_escape(
        self, emulator, stream, client, monkeypatch
    ):
        """On an ASCII (or Latin-1) terminal, text it cannot show is written as backslash
        escapes, in records and in check lines, instead of ending with a traceback."""
        put(client, stream, ('{"m": "ok \u2713"}'.encode(), "k\u2713"))
        ascii_out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
        monkeypatch.setattr(sys, "stdout", ascii_out)
        tail = cli.main(["tail", stream, "--output", "json", *connection_args(emulator)])
        check = cli.main(["check", "bad\u2713", *connection_args(emulator)])
        ascii_out.flush()
        text = ascii_out.buffer.getvalue().decode("ascii")
        assert (0, 2) == (tail, check)
        assert '"m": "ok \\u2713"' in text
        assert "invalid stream name 'bad\\u2713'" in text

    @pytest.mark.parametrize("output", ["pretty", "json", "raw"])
    def test_records_nested_too_deep_are_printed_as_text(
        self, capsys, emulator, stream, client, output
    ):
        """A record of JSON nested deeper than the parser (or the indenting writer) follows is
        printed as its text; RecursionError ended tail with a traceback."""
        depths = (100, 990, 100_000)
        put(client, stream, *((b"[" * n + b"]" * n, "k1") for n in depths))
        code, out, err = run(capsys, "tail", stream, "--output", output, *connection_args(emulator))
        assert (0, "") == (code, err)
        assert all(("[" * n + "]" * n) in out or output == "pretty" for n in depths)
        assert "[" * 100_000 in out

    def test_limit_stops_after_n_records(self, capsys, emulator, stream, client):
        """--limit prints at most that many records."""
        put(client, stream, *[(f"r{i}".encode(), "k1") for i in range(5)])
        code, out, _ = run(
            capsys, "tail", stream, "--output", "raw", "-n", "2", *connection_args(emulator)
        )
        assert (0, ["r0", "r1"]) == (code, out.splitlines())

    def test_reads_one_partition(self, capsys, emulator, stream, client):
        """--partition reads only that partition."""
        put(client, stream, (b"in zero", "k1"), (b"in one", "hello"))
        code, out, _ = run(
            capsys,
            "tail",
            stream,
            "--partition",
            "1",
            "--output",
            "raw",
            *connection_args(emulator),
        )
        assert (0, "in one\n") == (code, out)

    def test_latest_skips_existing_records(self, capsys, emulator, stream, client):
        """--from latest prints nothing for records written before the call."""
        put(client, stream, (b"old", "k1"))
        assert (0, "") == run(
            capsys, "tail", stream, "--from", "latest", *connection_args(emulator)
        )[:2]

    @pytest.mark.parametrize(
        ("timestamp", "expected"), [("2000-01-01T00:00:00Z", "old\n"), ("4102444800000", "")]
    )
    def test_at_timestamp_starts_at_the_given_time(
        self, capsys, emulator, stream, client, timestamp, expected
    ):
        """--timestamp (ISO 8601 or epoch ms) starts reading at that write time."""
        put(client, stream, (b"old", "k1"))
        code, out, _ = run(
            capsys,
            "tail",
            stream,
            "--timestamp",
            timestamp,
            "--output",
            "raw",
            *connection_args(emulator),
        )
        assert (0, expected) == (code, out)

    def test_at_timestamp_needs_a_timestamp(self, capsys, emulator, stream):
        """--from at_timestamp without --timestamp is a usage error."""
        code, _, err = run(
            capsys, "tail", stream, "--from", "at_timestamp", *connection_args(emulator)
        )
        assert (2, "dis-logging: error: --from at_timestamp needs --timestamp\n") == (code, err)

    def test_rejects_a_malformed_timestamp(self, capsys, emulator, stream):
        """An unparsable --timestamp is a usage error."""
        assert (
            2
            == run(capsys, "tail", stream, "--timestamp", "yesterday", *connection_args(emulator))[
                0
            ]
        )

    def test_unknown_stream_fails_with_one_line(self, capsys, emulator):
        """A stream that does not exist exits 1 with the DIS error code on one line."""
        code, out, err = run(capsys, "tail", "nope", *connection_args(emulator))
        assert (1, "", 1) == (code, out, len(err.splitlines()))
        assert "DIS.4301" in err

    def test_unreachable_endpoint_exits_1(self, capsys, emulator, stream):
        """A refused connection is a runtime failure, exit 1."""
        emulator.stop()
        code, _, err = run(capsys, "tail", stream, *connection_args(emulator), "--timeout", "2")
        assert 1 == code
        assert err.startswith("dis-logging: error: ")

    def test_follow_prints_new_records(self, capsys, emulator, stream, client):
        """--follow keeps polling and prints records written later."""
        put(client, stream, (b"before", "k1"))
        result: dict[str, int] = {}
        argv = ["tail", stream, "-f", "--interval", "0.02", "-n", "3", "--output", "raw"]
        argv += connection_args(emulator)
        follower = threading.Thread(target=lambda: result.update(code=cli.main(argv)))
        follower.start()
        try:
            emulator.wait_for(stream, 1)
            put(client, stream, (b"after-1", "k1"))
            put(client, stream, (b"after-2", "k1"))
        finally:
            follower.join(timeout=10)
        assert not follower.is_alive()
        assert ({"code": 0}, ["before", "after-1", "after-2"]) == (
            result,
            capsys.readouterr().out.splitlines(),
        )

    def test_follow_rides_out_failing_reads_and_says_so(self, capsys, emulator, stream, client):
        """A follower whose reads fail for a while (503) says so on stderr with the wait before
        the next attempt, and goes on reading once DIS answers again."""
        put(client, stream, (b"first", "k1"), (b"second", "k1"))
        emulator.fail_next(3, status=503, error_code="DIS.5000", operation="GetRecords")
        argv = ["tail", stream, "-f", "--interval", "0.01", "-n", "2", "--output", "raw"]
        code, out, err = run(capsys, *argv, *connection_args(emulator))
        retries = [line for line in err.splitlines() if "retrying in" in line]
        assert (0, ["first", "second"], 3) == (code, out.splitlines(), len(retries))
        assert retries[0].startswith("dis-logging: tail: GetRecords failed")
        assert "(Ctrl-C stops)" in retries[0]
        assert "dis-logging: tail: reading again" == err.splitlines()[-1]

    def test_follow_gets_a_new_cursor_after_the_old_one_expired(self, capsys, client):
        """A follower whose cursor expired (a pause longer than its 5 minutes) goes on after
        the last record it printed, without printing a record twice."""
        offset = [0.0]
        with DISEmulator(clock=lambda: time.time() + offset[0]) as emu:
            emu.create_stream("s", partitions=1)
            writer = DISClient(emu.url, emu.project_id, ak=emu.ak, sk=emu.sk)
            writer.put_records("s", [(b"before", "k1")])
            argv = ["tail", "s", "-f", "--interval", "0.01", "-n", "2", "--output", "raw"]
            argv += connection_args(emu)
            result: Dict[str, int] = {}
            follower = threading.Thread(target=lambda: result.update(code=cli.main(argv)))
            follower.start()
            try:
                read = threading.Event()
                for _ in range(1000):  # until the follower has read "before" and polled again
                    if sum(entry.operation == "GetRecords" for entry in emu.requests) >= 3:
                        read.set()
                        break
                    follower.join(0.01)
                assert read.is_set()
                offset[0] = 400.0  # past the cursor's 5 minutes
                writer.put_records("s", [(b"after", "k1")])
            finally:
                follower.join(timeout=10)
                writer.close()
            codes = [entry.error_code for entry in emu.requests]
        assert not follower.is_alive()
        captured = capsys.readouterr()
        assert ({"code": 0}, ["before", "after"]) == (result, captured.out.splitlines())
        assert "DIS.4225" in codes
        assert "the cursor is no longer valid" in captured.err

    def test_follow_goes_on_from_the_oldest_record_when_records_expired(
        self, capsys, emulator, stream, client
    ):
        """A follower told that the records at its cursor expired (DIS.4226), or whose last
        record expired (DIS.4224 for a cursor after it), goes on from the oldest record kept."""
        put(client, stream, (b"first", "k1"), (b"second", "k1"))
        emulator.fail_next(1, status=400, error_code="DIS.4226", operation="GetRecords")
        argv = ["tail", stream, "-f", "--interval", "0.01", "-n", "2", "--output", "raw"]
        code, out, err = run(capsys, *argv, *connection_args(emulator))
        assert (0, ["first", "second"]) == (code, out.splitlines())
        assert "records expired before they were read" in err

    def test_a_cursor_after_an_expired_record_starts_from_the_oldest(
        self, emulator, stream, client
    ):
        """When a cursor after the last record read is refused as out of range (DIS.4224: that
        record expired), the follower's reader starts again from the oldest record kept (here,
        where nothing expired, the first one)."""
        put(client, stream, (b"first", "k1"), (b"second", "k1"))
        reader = cli._PartitionReader(client, stream, "0", "TRIM_HORIZON", None)
        reader.fetch(1)
        emulator.fail_next(1, status=400, error_code="DIS.4224", operation="GetCursor")
        reader.renew()
        reader.pending.clear()
        reader.fetch(10)
        assert [b"first", b"second"] == [record.data for record in reader.pending]
        cursors = [
            entry.error_code for entry in emulator.requests if entry.operation == "GetCursor"
        ]
        assert [None, "DIS.4224", None] == cursors

    def test_follow_ends_on_a_failure_that_cannot_pass(self, capsys, emulator, stream, client):
        """A follower whose credentials are refused ends with exit 1, as without --follow."""
        put(client, stream, (b"first", "k1"))
        emulator.fail_next(1, status=403, error_code="DIS.4116", operation="GetRecords")
        argv = ["tail", stream, "-f", "--interval", "0.01", "--output", "raw"]
        code, _, err = run(capsys, *argv, *connection_args(emulator))
        assert (1, True) == (code, err.startswith("dis-logging: error: "))

    def test_reads_credentials_from_the_environment(
        self, capsys, emulator, stream, client, monkeypatch
    ):
        """Without flags the command reads the same environment variables as the handler."""
        monkeypatch.setenv("HUAWEICLOUD_SDK_AK", emulator.ak)
        monkeypatch.setenv("HUAWEICLOUD_SDK_SK", emulator.sk)
        monkeypatch.setenv("HUAWEICLOUD_SDK_PROJECT_ID", emulator.project_id)
        monkeypatch.setenv("DIS_LOGGING_ENDPOINT", emulator.url)
        put(client, stream, (b"from env", "k1"))
        assert (0, "from env\n") == run(capsys, "tail", stream, "--output", "raw")[:2]

    def test_password_credentials_work(self, capsys, emulator, stream, client):
        """IAM user name and password flags authenticate with a token."""
        put(client, stream, (b"token auth", "k1"))
        argv = [
            "tail",
            stream,
            "--output",
            "raw",
            "--endpoint",
            emulator.url,
            "--iam-endpoint",
            emulator.url,
        ]
        argv += ["--project-id", emulator.project_id, "--region", emulator.region]
        argv += ["--username", emulator.username, "--password", emulator.password]
        argv += ["--domain-name", emulator.domain_name]
        assert (0, "token auth\n") == run(capsys, *argv)[:2]


class TestSend:
    def test_sends_each_nonempty_line(self, capsys, emulator, stream, tmp_path):
        """Every non-empty line of the file becomes one record, in order."""
        source = tmp_path / "lines.txt"
        source.write_bytes(b'one\r\ntwo\n\n{"three": 3}\n')
        code, out, err = run(
            capsys, "send", stream, str(source), "--partition-key", "k", *connection_args(emulator)
        )
        assert (0, "") == (code, err)
        assert out.startswith("sent 3 records to 'test-stream' in 1 request (")
        assert [b"one", b"two", b'{"three": 3}'] == [r.data for r in emulator.records(stream)]

    def test_reads_standard_input(self, capsys, emulator, stream, monkeypatch):
        """FILE '-' (the default) reads standard input."""
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a\nb\n")))
        assert 0 == run(capsys, "send", stream, *connection_args(emulator))[0]
        assert [b"a", b"b"] == sorted(r.data for r in emulator.records(stream))

    def test_splits_batches(self, capsys, emulator, stream, tmp_path):
        """--batch-records bounds the records per request."""
        source = tmp_path / "lines.txt"
        source.write_text("".join(f"line {i}\n" for i in range(10)))
        code, out, _ = run(
            capsys, "send", stream, str(source), "--batch-records", "4", *connection_args(emulator)
        )
        assert (0, True) == (code, "in 3 requests" in out)

    def test_retries_throttled_records(self, capsys, emulator, stream, tmp_path):
        """Records failed with DIS.4303 are resent until stored."""
        emulator.fail_records("DIS.4303", every=2, limit=2)
        source = tmp_path / "lines.txt"
        source.write_text("a\nb\nc\nd\n")
        code = run(
            capsys, "send", stream, str(source), "--partition-key", "k", *connection_args(emulator)
        )[0]
        assert (0, [b"a", b"c", b"b", b"d"]) == (code, [r.data for r in emulator.records(stream)])

    def test_reports_rejected_records_and_exits_1(self, capsys, emulator, stream, tmp_path):
        """A record DIS rejects for good is counted and the command exits 1."""
        emulator.fail_records("DIS.4300", every=1, limit=1)
        source = tmp_path / "lines.txt"
        source.write_text("a\nb\n")
        code, out, err = run(capsys, "send", stream, str(source), *connection_args(emulator))
        assert (1, True) == (code, "1 failed" in out)
        assert err.startswith("dis-logging: error: 1 record was not stored: DIS.4300")
        assert err.endswith(" (x1)\n")

    def test_missing_file_is_a_usage_error(self, capsys, emulator, stream, tmp_path):
        """A file that cannot be read exits 2 with one line."""
        code, _, err = run(
            capsys, "send", stream, str(tmp_path / "absent"), *connection_args(emulator)
        )
        assert (2, 1) == (code, len(err.splitlines()))
        assert "cannot read" in err

    def test_unknown_stream_exits_1(self, capsys, emulator, tmp_path):
        """Sending to a stream that does not exist exits 1 naming the DIS code."""
        source = tmp_path / "lines.txt"
        source.write_text("a\n")
        code, _, err = run(capsys, "send", "nope", str(source), *connection_args(emulator))
        assert (1, True) == (code, "DIS.4301" in err)

    def test_batch_records_above_the_limit_is_a_usage_error(self, capsys, emulator, stream):
        """--batch-records above 1000 is rejected with exit 2."""
        assert (
            2
            == run(capsys, "send", stream, "--batch-records", "5000", *connection_args(emulator))[0]
        )


class TestCheck:
    def test_passes_and_writes_one_test_record(self, capsys, emulator, stream):
        """A working setup passes every step and stores one test record."""
        code, out, _ = run(capsys, "check", stream, *connection_args(emulator))
        lines = out.splitlines()
        assert (0, ["ok"] * 5) == (code, [line.split()[0] for line in lines[1:]])
        assert (
            f"checking stream {stream!r}; writes one test record to it (--no-put skips that)"
            == lines[0]
        )
        [record] = emulator.records(stream)
        assert "dis-logging check" == json.loads(record.data)["message"]

    def test_no_put_writes_nothing(self, capsys, emulator, stream):
        """--no-put skips the test record."""
        code, out, _ = run(capsys, "check", stream, "--no-put", *connection_args(emulator))
        assert (0, [], "skip  test put") == (
            code,
            emulator.records(stream),
            out.splitlines()[-1][:14],
        )

    def test_without_a_stream_lists_streams(self, capsys, emulator, stream):
        """Without STREAM only the connection is checked and the visible streams are listed."""
        code, out, _ = run(capsys, "check", *connection_args(emulator))
        assert (0, True) == (code, "1 visible: test-stream" in out)

    def test_missing_stream_fails(self, capsys, emulator):
        """A stream that does not exist fails the stream step with exit 1."""
        code, out, _ = run(capsys, "check", "nope", *connection_args(emulator))
        assert (1, "FAIL  stream         stream 'nope' does not exist in this project") == (
            code,
            out.splitlines()[-1],
        )

    def test_wrong_secret_key_fails_without_leaking_it(self, capsys, emulator, stream):
        """A wrong SK fails the credentials step, and the SK appears nowhere in the output."""
        secret = "WRONGsecretKEY0000000000000000000000099"
        code, out, err = run(
            capsys, "check", stream, *connection_args(emulator, **{"--sk": secret})
        )
        assert (1, True) == (code, "credentials were rejected" in out)
        assert secret not in out + err

    def test_unreachable_endpoint_fails(self, capsys, emulator, stream):
        """An endpoint that refuses connections fails the endpoint step."""
        emulator.stop()
        code, out, _ = run(capsys, "check", stream, "--timeout", "2", *connection_args(emulator))
        assert (1, True) == (code, "did not answer" in out)

    def test_missing_configuration_fails_the_first_step(self, capsys):
        """Missing settings fail the configuration step with exit 2, as in every command."""
        code, out, _ = run(
            capsys, "check", "s", "--endpoint", "http://127.0.0.1:9", "--project-id", "p"
        )
        assert (2, "FAIL  configuration") == (code, out.splitlines()[1][:19])

    def test_a_description_without_status_or_partitions_fails(self, capsys):
        """A server answering DescribeStream with ``{}`` (not DIS) fails the check, rather than
        passing a stream "RUNNING with 0 partitions"; tail says the same instead of "empty"."""
        server = _FixedReply({}, status=200)
        try:
            flags = ["--endpoint", server.url, "--project-id", "p", "--token", "t0ken"]
            check = run(capsys, "check", "s", *flags)
            tail = run(capsys, "tail", "s", *flags)
        finally:
            server.close()
        assert (1, 1) == (check[0], tail[0])
        assert "RUNNING" not in check[1]
        assert "no stream status or partition list" in check[1].splitlines()[-1]
        assert "no stream status or partition list" in tail[2]

    @pytest.mark.parametrize("kind", ["metadata", "iam"])
    def test_an_unreachable_credential_service_fails_the_credentials_step(
        self, capsys, emulator, stream, kind, monkeypatch
    ):
        """A metadata service or IAM endpoint that refuses connections fails the credentials
        step naming that service, not the DIS endpoint (which was never asked)."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
        argv = ["check", stream, "--endpoint", emulator.url, "--project-id", emulator.project_id]
        if kind == "metadata":
            monkeypatch.setenv("DIS_LOGGING_METADATA_CREDENTIALS", "true")
            monkeypatch.setenv("DIS_LOGGING_METADATA_ENDPOINT", closed)
            service = "the metadata service"
        else:
            argv += ["--iam-endpoint", closed, "--username", "u", "--domain-name", "d"]
            argv += ["--password", "pw-for-the-test"]
            service = "the IAM endpoint"
        code, out, _ = run(capsys, *argv)
        last = out.splitlines()[-1]
        assert (1, "FAIL  credentials ") == (code, last[:18])
        assert f"{service} did not answer" in last
        assert "tests the whole setup" not in last

    def test_never_prints_the_password(self, capsys, emulator, stream):
        """With password credentials the password is not printed."""
        argv = ["check", stream, "--endpoint", emulator.url, "--iam-endpoint", emulator.url]
        argv += ["--project-id", emulator.project_id, "--region", emulator.region]
        argv += ["--username", emulator.username, "--password", emulator.password]
        argv += ["--domain-name", emulator.domain_name]
        code, out, err = run(capsys, *argv)
        assert (0, False) == (code, emulator.password in out + err)


class TestDemo:
    def test_runs_with_no_arguments(self, capsys):
        """The README quick start, 'dis-logging demo', succeeds and reads back every record."""
        code, out, err = run(capsys, "demo")
        assert (0, "") == (code, err)
        assert "read back   5,000 records" in out
        assert "sent        5,000 records" in out

    def test_leaves_no_handler_behind(self, capsys):
        """After the demo its logger has no handler left."""
        assert 0 == run(capsys, "demo", "--records", "200", "--threads", "2")[0]
        assert [] == logging.getLogger(cli._DEMO_LOGGER).handlers

    def test_prints_sample_records(self, capsys):
        """The demo prints decoded JSON records."""
        out = run(capsys, "demo", "--records", "100", "--partitions", "1", "--show", "1")[1]
        assert '"message": "order' in out


class TestProgress:
    def test_draws_on_a_terminal(self):
        """On a TTY the progress line is redrawn in place and ends with a newline."""
        stream = TTY()
        progress = cli._Progress("sent", 10, stream)
        progress.update(5, force=True)
        progress.done(10)
        assert "\rsent      [###############...............] 5/10" in stream.getvalue()
        assert stream.getvalue().endswith("10/10\n")

    def test_is_silent_elsewhere(self):
        """Without a TTY nothing is drawn."""
        stream = io.StringIO()
        progress = cli._Progress("sent", 10, stream)
        progress.update(5, force=True)
        progress.done(10)
        assert "" == stream.getvalue()


def test_dis_logging_script_is_installed():
    """The dis-logging console script runs the command line."""
    script = os.path.join(os.path.dirname(sys.executable), "dis-logging")
    result = subprocess.run([script, "check", "--help"], capture_output=True, text=True, timeout=60)
    assert (0, True) == (result.returncode, result.stdout.startswith("usage: dis-logging check"))


def test_demo_rejects_a_negative_show_count(capsys):
    """`demo --show -1` is a usage error (exit 2) naming the bad value."""
    code, _, err = run(capsys, "demo", "--show", "-1")
    assert (2, True) == (code, "'-1'" in err)


class TestEveryday:
    """What a new user meets: flags per field, progress, merged tail, empty streams, exit codes."""

    def test_flag_completes_environment_per_field(self, capsys, emulator, stream, monkeypatch):
        """--sk with HUAWEICLOUD_SDK_AK in the environment uses both (flags override per field)."""
        monkeypatch.setenv("HUAWEICLOUD_SDK_AK", emulator.ak)
        monkeypatch.setenv("HUAWEICLOUD_SDK_SK", "wrong-secret-from-the-environment")
        argv = ["check", stream, "--no-put", "--endpoint", emulator.url]
        argv += ["--project-id", emulator.project_id, "--sk", emulator.sk]
        code, out, err = run(capsys, *argv)
        assert (0, ["warning: --sk on the command line"]) == (
            code,
            [line[len("dis-logging: ") :][:33] for line in err.splitlines()],
        )
        assert "ok    credentials    accepted" in out

    def test_check_reads_the_stream_from_the_environment(
        self, capsys, emulator, stream, monkeypatch
    ):
        """Without STREAM, check uses DIS_LOGGING_STREAM and says where the name came from."""
        monkeypatch.setenv("DIS_LOGGING_STREAM", stream)
        code, out, _ = run(capsys, "check", "--no-put", *connection_args(emulator))
        assert (
            0,
            f"checking stream {stream!r} (from DIS_LOGGING_STREAM); no record is written "
            "(--no-put)",
        ) == (code, out.splitlines()[0])
        assert f"ok    stream         {stream!r} is RUNNING" in out

    @pytest.mark.parametrize("command", ["check", "tail", "send"])
    def test_invalid_stream_name_exits_2_everywhere(self, capsys, emulator, command):
        """An invalid stream name is a configuration error, exit 2, in every command."""
        code, out, err = run(capsys, command, "bad name!", *connection_args(emulator))
        assert 2 == code
        assert "invalid stream name 'bad name!'" in out + err

    @pytest.mark.parametrize(
        ("argv", "said"),
        [
            (["tail", "s", "--partition", "abc"], "invalid partition id 'abc'"),
            (["tail", "s", "--partition", "-1"], "invalid partition id '-1'"),
            (["tail", "s", "--timestamp", "99999999999999999999"], "from 1970 to the year 9999"),
            (["tail", "s", "--timestamp", "1900-01-01T00:00:00Z"], "from 1970 to the year 9999"),
            (["tail", "s", "--timestamp", "\u00b2"], "invalid timestamp"),
            (["send", "s", "-", "--retry-time", "-1"], "between 0 and 1000000"),
            (["send", "s", "-", "--retry-time", "nan"], "between 0 and 1000000"),
            (["send", "s", "-", "--retry-time", "inf"], "between 0 and 1000000"),
            (["tail", "s", "-f", "--interval", "inf"], "at most 1000000 seconds"),
            (["tail", "s", "-f", "--interval", "1e10"], "at most 1000000 seconds"),
            (["check", "s", "--request-timeout", "1e300"], "at most 1000000 seconds"),
        ],
    )
    def test_a_bad_value_is_a_usage_error_before_any_request(self, capsys, emulator, argv, said):
        """A partition id, timestamp or retry time that cannot work is exit 2 with one line,
        before any request (they were sent, failing with exit 1, or accepted)."""
        code, _, err = run(capsys, *argv, *connection_args(emulator))
        assert (2, True, []) == (code, said in err, emulator.requests)

    def test_an_unread_variable_is_named_with_the_one_meant(
        self, capsys, emulator, stream, monkeypatch
    ):
        """A misspelt DIS_LOGGING_* variable (read by nothing) gets a warning naming the one
        meant; the command runs on."""
        monkeypatch.setenv("DIS_LOGGING_ENDPIONT", "http://127.0.0.1:9")
        code, _, err = run(capsys, "check", stream, "--no-put", *connection_args(emulator))
        assert (0, True) == (
            code,
            "warning: environment variable(s) DIS_LOGGING_ENDPIONT (did you mean "
            "DIS_LOGGING_ENDPOINT?) set but not read" in err,
        )

    @pytest.mark.parametrize("command", ["check", "tail", "send"])
    def test_missing_credentials_exit_2_everywhere(self, capsys, command):
        """Missing credentials are a configuration error, exit 2, in every command."""
        code, _, _ = run(
            capsys, command, "s", "--endpoint", "http://127.0.0.1:9", "--project-id", "p"
        )
        assert 2 == code

    def test_empty_stream_says_so(self, capsys, emulator, stream):
        """tail of an empty stream exits 0 and says on stderr that there are no records."""
        code, out, err = run(capsys, "tail", stream, *connection_args(emulator))
        assert (0, "", f"dis-logging: no records in stream {stream!r}\n") == (code, out, err)

    def test_merge_orders_all_partitions_by_time(self, capsys, emulator, stream, client):
        """tail --merge prints the records of every partition in write-time order."""
        keys = ["k1", "hello"]  # one key per partition of the two-partition test stream
        written = []
        for number in range(12):
            data = f"r{number}".encode()
            put(client, stream, (data, keys[number % 2]))
            written.append(data.decode())
        stored = sorted(
            emulator.records(stream),
            key=lambda r: (r.timestamp, r.partition_id, int(r.sequence_number)),
        )
        code, out, _ = run(
            capsys, "tail", stream, "--merge", "--output", "raw", *connection_args(emulator)
        )
        assert {"shardId-0000000000", "shardId-0000000001"} == {r.partition_id for r in stored}
        assert (0, [r.data.decode() for r in stored]) == (code, out.splitlines())

    def test_merge_pages_through_partitions(self, capsys, emulator, stream, client):
        """--merge keeps the time order when partitions are read in many pages (--limit)."""
        for number in range(30):
            put(client, stream, (f"p{number:02d}".encode(), ["k1", "hello"][number % 3 == 0]))
        stored = sorted(
            emulator.records(stream),
            key=lambda r: (r.timestamp, r.partition_id, int(r.sequence_number)),
        )
        code, out, _ = run(
            capsys,
            "tail",
            stream,
            "--merge",
            "-n",
            "25",
            "--output",
            "raw",
            *connection_args(emulator),
        )
        assert (0, [r.data.decode() for r in stored][:25]) == (code, out.splitlines())

    def test_send_names_the_cause_of_failures(self, capsys, tmp_path):
        """send against a closed port ends with the cause in words, not an exception name."""
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        source = tmp_path / "lines.txt"
        source.write_text("one\n")
        argv = ["send", "s", str(source), "--endpoint", f"http://127.0.0.1:{port}"]
        token = tmp_path / "token"
        token.write_text("static-token-value\n")
        argv += ["--project-id", "p", "--token-file", str(token), "--retry-time", "0.3"]
        code, _, err = run(capsys, *argv)
        assert 1 == code
        assert err.startswith(
            f"dis-logging: error: 1 record was not stored: PutRecords: 127.0.0.1:{port} refused "
            "the connection (nothing listens on that port)"
        )
        assert "TransportError" not in err

    def test_send_progress_on_a_terminal(self, capsys, emulator, stream, tmp_path, monkeypatch):
        """On a TTY, send shows records sent, the rate and failures with their cause."""
        terminal = TTY()
        monkeypatch.setattr(sys, "stderr", terminal)
        emulator.fail_records("DIS.4300", every=1, limit=1)
        source = tmp_path / "lines.txt"
        source.write_text("a\nb\nc\n")
        code = cli.main(["send", stream, str(source), *connection_args(emulator)])
        drawn = terminal.getvalue()
        assert 1 == code
        assert drawn.startswith("\rsent      2 records, ")
        assert "/s, 1 failed (DIS.4300" in drawn

    def test_progress_redraws_at_most_once_per_interval(self):
        """Updates within the interval are skipped; the final state is always drawn."""
        now = [100.0]
        terminal = TTY()
        progress = cli._Progress("sent", stream=terminal, interval=1.0, clock=lambda: now[0])
        for count, moment in [(1, 100.0), (2, 100.5), (3, 100.99), (4, 101.0), (5, 101.2)]:
            now[0] = moment
            progress.update(count)
        progress.done(6)
        frames = [frame.strip() for frame in terminal.getvalue().split("\r") if frame]
        assert ["sent      1", "sent      4", "sent      6"] == frames


def test_send_progress_through_the_installed_command_on_a_pty(emulator, stream, tmp_path):
    """The installed dis-logging command draws send's progress when stderr is a terminal."""
    import pty

    script = os.path.join(os.path.dirname(sys.executable), "dis-logging")
    source = tmp_path / "lines.txt"
    source.write_text("".join(f"line {number}\n" for number in range(20)))
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [script, "send", stream, str(source), *connection_args(emulator)],
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
            timeout=60,
        )
        os.close(terminal)
        terminal = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal's other end is closed and everything was read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        if terminal != -1:
            os.close(terminal)
        os.close(controller)
    assert (0, True) == (result.returncode, result.stdout.startswith("sent 20 records"))
    assert b"\rsent      20 records, " in drawn
    assert b"/s, 0 failed" in drawn
