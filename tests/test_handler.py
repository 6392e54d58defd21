"""Tests for dis_logging.handler against a real DISEmulator on 127.0.0.1."""

from __future__ import annotations

import collections
import gc
import json
import logging
import logging.config
import socket
import sys
import threading
import time
import traceback
import weakref
from typing import Any, Dict, List

import pytest

from dis_logging.emulator import DISEmulator
from dis_logging.errors import ConfigError
from dis_logging.formatting import JSONFormatter
from dis_logging.handler import DISHandler, HandlerStats

FAST = {"flush_interval": 0.05, "initial_backoff": 0.01, "max_backoff": 0.2, "close_timeout": 5.0}


@pytest.fixture
def handlers():
    made: List[DISHandler] = []
    yield made
    for handler in made:
        handler.close()


@pytest.fixture
def make_handler(emulator: DISEmulator, stream: str, handlers):
    """Build a DISHandler (or ``handler_class``) wired to the emulator with AK/SK; closed after
    the test."""

    def build(handler_class=DISHandler, **kwargs):
        settings: Dict[str, Any] = {
            "stream_name": stream,
            "endpoint": emulator.url,
            "project_id": emulator.project_id,
            **FAST,
        }
        if not {"ak", "token", "username"} & set(kwargs):
            settings.update(ak=emulator.ak, sk=emulator.sk)
        settings.update(kwargs)
        handler = handler_class(**settings)
        handlers.append(handler)
        return handler

    return build


def plain(handler: DISHandler) -> DISHandler:
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def logger_for(handler: DISHandler, name: str = "app") -> logging.Logger:
    log = logging.getLogger(f"{name}.{id(handler)}")
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG)
    log.propagate = False
    return log


def quiescent(stats: HandlerStats) -> bool:
    return stats.emitted == stats.sent + stats.dropped + stats.failed + stats.queued


class TestDelivery:
    def test_ten_thousand_records_from_eight_threads(self, emulator, stream, make_handler):
        """10,000 records from 8 threads arrive complete, byte-exact and without duplicates."""
        handler = plain(make_handler())
        log = logger_for(handler)
        expected: collections.Counter[bytes] = collections.Counter()
        lock = threading.Lock()

        def work(worker: int) -> None:
            mine = []
            for i in range(1250):
                text = f"w{worker}-{i:05d}-" + "x" * (i % 50) + "é"
                log.info(text)
                mine.append(text.encode())
            with lock:
                expected.update(mine)

        start = time.perf_counter()
        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert handler.flush(timeout=30)
        elapsed = time.perf_counter() - start
        stored = collections.Counter(r.data for r in emulator.records(stream))
        assert expected == stored
        stats = handler.stats
        assert (10_000, 10_000, 0, 0) == (stats.emitted, stats.sent, stats.queued, stats.dropped)
        puts = [r for r in emulator.requests if r.operation == "PutRecords"]
        print(
            f"\n10k/8 threads: {len(puts)} requests, {stats.retried} retries, {elapsed:.3f} s wall"
        )

    @pytest.mark.parametrize("auth", ["aksk", "token"])
    def test_an_ipv6_loopback_endpoint_gets_every_record(self, auth, handlers):
        """An endpoint on [::1] works with either signing (the Host header keeps the brackets):
        1,200 records arrive complete and in order."""
        try:
            emulator = DISEmulator(host="::1").start()
        except OSError as exc:  # a machine without IPv6 loopback
            pytest.skip(f"no IPv6 loopback here: {exc}")
        try:
            emulator.create_stream("v6", partitions=1)
            settings: Dict[str, Any] = {"endpoint": emulator.url, **FAST}
            if auth == "aksk":
                settings.update(ak=emulator.ak, sk=emulator.sk)
            else:
                settings.update(token=emulator.issue_token())
            handler = DISHandler("v6", project_id=emulator.project_id, **settings)
            handlers.append(handler)
            log = logger_for(plain(handler))
            for i in range(1200):
                log.info("v6 %04d", i)
            assert handler.flush(timeout=30)
            assert ("http://[::1]:", [b"v6 %04d" % i for i in range(1200)]) == (
                emulator.url[: len("http://[::1]:")],
                [r.data for r in emulator.records("v6")],
            )
        finally:
            emulator.stop()

    def test_batches_respect_record_and_byte_limits(self, emulator, stream, make_handler):
        """No request carries more than max_batch_records records or max_batch_bytes bytes."""
        handler = plain(make_handler(max_batch_records=40, max_batch_bytes=3000))
        log = logger_for(handler)
        for i in range(600):
            log.info("%04d %s", i, "y" * (i % 150))
        assert handler.flush(timeout=10)
        puts = [r for r in emulator.requests if r.operation == "PutRecords"]
        assert 600 == sum(r.record_count for r in puts)
        assert max(r.record_count for r in puts) <= 40
        assert max(r.data_bytes for r in puts) <= 3000

    def test_partial_failures_are_resent_without_duplicates(self, emulator, stream, make_handler):
        """Per-record throttling is retried for the failed records only; each is stored once."""
        emulator.fail_records("DIS.4303", every=3)
        handler = plain(make_handler())
        log = logger_for(handler)
        for i in range(300):
            log.info("rec-%03d", i)
        assert handler.flush(timeout=20)
        emulator.clear_faults()
        stored = [r.data for r in emulator.records(stream)]
        assert sorted(f"rec-{i:03d}".encode() for i in range(300)) == sorted(stored)
        assert handler.stats.retried >= 100

    def test_survives_errors_throttling_drops_and_delays(self, emulator, stream, make_handler):
        """5xx, 429 with Retry-After, dropped connections and slow replies lose nothing."""
        emulator.fail_next(2, status=500, error_code="DIS.5000")
        emulator.fail_next(1, status=429, error_code="APIG.0308", retry_after=0.05)
        emulator.fail_next(1, status=503, error_code="DIS.5001")
        emulator.drop_connections(2)
        emulator.set_delay(0.05, "PutRecords")
        handler = plain(make_handler(partition_key="k1", max_batch_records=50))
        log = logger_for(handler)
        for i in range(400):
            log.info("m%04d", i)
        assert handler.flush(timeout=30)
        stored = [r.data for r in emulator.records(stream)]
        # at-least-once: a dropped connection may have stored nothing, never a partial batch twice
        assert {f"m{i:04d}".encode() for i in range(400)} == set(stored)
        in_order = [d for i, d in enumerate(stored) if d not in stored[:i]]
        assert sorted(in_order) == in_order  # one key, one partition: emission order kept

    def test_mixed_faults_lose_nothing(self, emulator, stream, make_handler):
        """20% 5xx, 10% per-record throttling, drops and token expiry: every record is stored."""
        emulator.fail_rate(0.2, status=500, error_code="DIS.5000", seed=7)
        emulator.fail_records("DIS.4303", fraction=0.1, seed=7)
        emulator.drop_connections(3)
        handler = plain(
            make_handler(
                username=emulator.username,
                password=emulator.password,
                domain_name=emulator.domain_name,
                max_batch_records=100,
            )
        )
        log = logger_for(handler)

        def work(worker: int) -> None:
            for i in range(1000):
                log.info("f%d-%04d", worker, i)
                if worker == 0 and i == 500:
                    emulator.expire_tokens()

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert handler.flush(timeout=60)
        emulator.clear_faults()
        expected = {f"f{w}-{i:04d}".encode() for w in range(4) for i in range(1000)}
        assert expected == {r.data for r in emulator.records(stream)}
        stats = handler.stats
        assert (4000, 4000, 0, 0) == (stats.emitted, stats.sent, stats.dropped, stats.failed)
        assert stats.retried > 0

    def test_token_expiry_mid_run(self, emulator, stream, make_handler):
        """Password tokens are refreshed after expiry and every record is delivered."""
        handler = plain(
            make_handler(
                username=emulator.username,
                password=emulator.password,
                domain_name=emulator.domain_name,
                iam_endpoint=emulator.url,
            )
        )
        log = logger_for(handler)
        for i in range(50):
            log.info("before-%d", i)
        assert handler.flush(timeout=10)
        emulator.expire_tokens()
        for i in range(50):
            log.info("after-%d", i)
        assert handler.flush(timeout=10)
        assert 100 == len(emulator.records(stream))
        assert {"token"} == {r.auth for r in emulator.requests if r.operation == "PutRecords"}

    @pytest.mark.parametrize("kind", ["aksk", "token", "password"])
    def test_credential_kinds(self, emulator, stream, make_handler, kind):
        """AK/SK signing, a ready token and password tokens all deliver."""
        if kind == "aksk":
            handler = make_handler()
        elif kind == "token":
            handler = make_handler(token=emulator.issue_token())
        else:
            handler = make_handler(
                username=emulator.username,
                password=emulator.password,
                domain_name=emulator.domain_name,
            )
        logger_for(handler).warning("hello")
        assert handler.flush(timeout=10)
        auth = {r.auth for r in emulator.requests if r.operation == "PutRecords"}
        assert {"aksk" if kind == "aksk" else "token"} == auth

    def test_flush_on_level_sends_promptly(self, emulator, stream, make_handler):
        """A record at flush_on_level is shipped without waiting for flush_interval."""
        handler = make_handler(flush_interval=60, flush_on_level="ERROR")
        log = logger_for(handler)
        log.info("queued")
        log.error("urgent")
        assert 2 == len(emulator.wait_for(stream, 2, timeout=5))

    def test_enqueue_bytes(self, emulator, stream, make_handler):
        """enqueue ships pre-encoded bytes with their partition key."""
        handler = make_handler()
        handler.enqueue(b'{"event":"x"}', "key-1", logging.INFO)
        assert handler.flush(timeout=10)
        record = emulator.records(stream)[0]
        assert (b'{"event":"x"}', "key-1") == (record.data, record.partition_key)

    @pytest.mark.parametrize("kind", [bytearray, memoryview])
    def test_enqueue_of_a_buffer_ships_its_bytes(self, emulator, stream, make_handler, kind):
        """A bytearray or memoryview given to enqueue() ships as its bytes; it was taken for a
        captured record, so its batch stayed in flight for good and every later record waited
        behind it (flush() False, "flush failed: IndexError")."""
        handler = make_handler()
        handler.enqueue(kind(b'{"event":"x"}'))
        logger_for(handler).warning("after it")
        assert handler.flush(timeout=10)
        records = emulator.wait_for(stream, 2, timeout=5)
        assert b'{"event":"x"}' in [record.data for record in records]

    def test_partition_key_callable(self, emulator, stream, make_handler):
        """A callable partition_key decides each record's key."""
        handler = make_handler(partition_key=lambda record: record.name.rsplit(".", 1)[0])
        logger_for(handler, "tenant").info("x")
        assert handler.flush(timeout=10)
        assert "tenant" == emulator.records(stream)[0].partition_key

    def test_default_output_is_json(self, emulator, stream, make_handler):
        """Without a formatter the payload is the JSONFormatter object with extras."""
        handler = make_handler()
        logger_for(handler).info("hi %s", "there", extra={"user": "bob"})
        assert handler.flush(timeout=10)
        payload = json.loads(emulator.records(stream)[0].data)
        assert ("hi there", "bob", "INFO") == (
            payload["message"],
            payload["user"],
            payload["level"],
        )

    def test_emit_ships_what_handle_ships(self, emulator, stream, make_handler):
        """emit() called directly (the general path) ships the bytes handle()'s own path ships."""
        handler = make_handler()

        def record(via: str) -> logging.LogRecord:
            made = logging.LogRecord("app.paths", logging.INFO, "app.py", 7, "id %s", (42,), None)
            made.created, made.msecs, made.via = 1_700_000_000.25, 250.0, via
            return made

        handler.handle(record("path"))
        handler.emit(record("path"))
        assert handler.flush(timeout=10)
        shipped = [r.data for r in emulator.records(stream)]
        assert 2 == len(shipped)
        assert shipped[0] == shipped[1]
        assert "id 42" == json.loads(shipped[0])["message"]

    def test_a_record_without_a_logger_name_is_shipped(self, emulator, stream, make_handler):
        """logging.makeLogRecord() without "name" leaves None there (a dict from a socket, a
        test's record): handle() once raised AttributeError into the caller for it."""
        handler = make_handler()
        fields = {"msg": "made %s", "args": ("by hand",), "levelno": 20, "levelname": "INFO"}
        nameless = logging.makeLogRecord(fields)
        unhashable = logging.makeLogRecord({**fields, "name": ["not", "hashable"]})
        results = [handler.handle(nameless), handler.handle(unhashable)]
        assert handler.flush(timeout=10)
        payloads = [json.loads(r.data) for r in emulator.records(stream)]
        assert [True, True] == results
        assert [None, ["not", "hashable"]] == sorted(
            (p["logger"] for p in payloads if p["message"] == "made by hand"), key=bool
        )

    def test_records_queued_before_a_formatter_change_keep_their_formatter(
        self, emulator, stream, make_handler
    ):
        """Records captured by a JSONFormatter the handler then replaced are written by that
        formatter (its renames and static fields), not by a default one."""
        handler = make_handler(flush_interval=60.0, partition_key="one")  # one partition: in order
        log = logger_for(handler)
        log.info("starts the flusher")
        assert handler.flush(timeout=10)
        handler.setFormatter(
            JSONFormatter(rename_fields={"message": "msg"}, static_fields={"s": 1})
        )
        log.info("first %s", "formatter")
        handler.setFormatter(JSONFormatter())
        log.info("second formatter")
        gc.collect()  # nothing but the queued records refers to the first formatter any more
        assert handler.flush(timeout=10)
        payloads = [json.loads(r.data) for r in emulator.records(stream)]
        assert [("first formatter", 1), ("second formatter", None)] == [
            (p.get("msg", p.get("message")), p.get("s")) for p in payloads[1:]
        ]

    def test_records_queued_under_many_formatters_keep_each_one(
        self, emulator, stream, make_handler
    ):
        """Forty formatter changes while records wait (DIS down, say), back and forth between a
        plain Formatter and JSONFormatters: every record is written by the formatter it was
        logged under (past 32 changes, records were written by a default JSONFormatter)."""
        handler = make_handler(flush_interval=60.0, partition_key="one")  # one partition: in order
        log = logger_for(handler)
        text = logging.Formatter("text %(message)s")
        renamed = JSONFormatter(rename_fields={"message": "msg"})
        for i in range(40):
            handler.setFormatter(JSONFormatter(static_fields={"n": i}))
            log.info("static %d", i)
            handler.setFormatter(text)
            log.info("plain %d", i)
            handler.setFormatter(renamed)
            log.info("renamed %d", i)
        gc.collect()
        assert handler.flush(timeout=10)
        shipped = []
        for record in emulator.records(stream):
            if record.data.startswith(b"text "):
                shipped.append(record.data.decode())
            else:
                payload = json.loads(record.data)
                shipped.append(payload.get("msg") or f"{payload['message']} n={payload.get('n')}")
        expected = []
        for i in range(40):
            expected += [f"static {i} n={i}", f"text plain {i}", f"renamed {i}"]
        assert expected == shipped

    def test_threads_meeting_a_new_formatter_share_its_encoder(
        self, emulator, stream, make_handler
    ):
        """Two threads logging the first records after a setFormatter() at the same moment: both
        records keep that formatter (each thread made an encoder, and the records of the one
        replaced at once were written by a default JSONFormatter)."""
        handler = make_handler(flush_interval=60.0)
        log = logger_for(handler)
        log.info("starts the flusher")
        assert handler.flush(timeout=10)
        handler.setFormatter(JSONFormatter(static_fields={"s": 1}))
        buffer_lock = handler._lanes[0].buffer._lock
        threads = [threading.Thread(target=log.info, args=(f"thread {i}",)) for i in range(2)]
        with buffer_lock:  # the first thread to change the encoder waits here, inside the change
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                frames = sys._current_frames()
                inside = [
                    thread
                    for thread in threads
                    if any(
                        entry.name == "_switch_encoder"
                        for entry in traceback.extract_stack(frames[thread.ident])  # type: ignore[index]
                    )
                ]
                if len(inside) == 2:
                    break
                time.sleep(0.01)
        for thread in threads:
            thread.join(10)
        gc.collect()
        assert handler.flush(timeout=10)
        payloads = [json.loads(r.data) for r in emulator.records(stream)]
        assert [("thread 0", 1), ("thread 1", 1)] == sorted(
            (p["message"], p.get("s")) for p in payloads if p["message"].startswith("thread")
        )

    def test_replaced_formatters_are_let_go_once_nothing_is_queued(
        self, emulator, stream, make_handler
    ):
        """The handler keeps a replaced JSONFormatter only while records may need it."""
        handler = make_handler(flush_interval=60.0)
        log = logger_for(handler)
        first = JSONFormatter(static_fields={"f": 1})
        handler.setFormatter(first)
        log.info("under the first formatter")
        gone = weakref.ref(first)
        del first
        handler.setFormatter(JSONFormatter())
        log.info("under the second, while the first one's record waits")
        gc.collect()
        assert gone() is not None  # a queued record still needs it
        assert handler.flush(timeout=10)
        handler.setFormatter(JSONFormatter())
        log.info("under the third, nothing queued before it")
        gc.collect()
        assert gone() is None
        assert handler.flush(timeout=10)
        assert 1 == sum(b'"f":1' in record.data for record in emulator.records(stream))

    def test_a_changed_static_field_reaches_every_later_record(
        self, emulator, stream, make_handler
    ):
        """static_fields changed on the formatter in use: plain records written afterwards got
        the old value (text the formatter keeps for them), records with extra fields and
        format() the new one."""
        handler = make_handler(partition_key="one")  # one partition: in order
        formatter = JSONFormatter(static_fields={"v": "1"})
        handler.setFormatter(formatter)
        log = logger_for(handler)
        log.info("one")
        assert handler.flush(timeout=10)
        formatter.static_fields["v"] = "2"
        log.info("two")
        log.info("three", extra={"e": 1})
        assert handler.flush(timeout=10)
        payloads = [json.loads(r.data) for r in emulator.records(stream)]
        assert [("one", "1"), ("two", "2"), ("three", "2")] == [
            (p["message"], p["v"]) for p in payloads
        ]

    def test_a_formatter_subclass_adding_captured_fields_writes_every_record(
        self, emulator, stream, make_handler
    ):
        """A JSONFormatter subclass that adds a field in captured_fields() has it in every
        record the handler ships, as format() writes it (plain records went out without it)."""

        class HostFormatter(JSONFormatter):
            def captured_fields(self, captured: Any) -> Dict[str, Any]:
                fields = super().captured_fields(captured)
                fields["host"] = "web-1"
                return fields

        handler = make_handler()
        handler.setFormatter(HostFormatter())
        log = logger_for(handler)
        log.info("plain")
        log.info("with an extra", extra={"e": 1})
        assert handler.flush(timeout=10)
        payloads = [json.loads(r.data) for r in emulator.records(stream)]
        assert [("plain", "web-1"), ("with an extra", "web-1")] == sorted(
            (p["message"], p.get("host")) for p in payloads
        )

    def test_a_subclass_emit_is_called(self, emulator, stream, make_handler):
        """A subclass that overrides emit() sees every record, and super().emit() ships it."""
        seen: List[str] = []

        class Counting(DISHandler):
            def emit(self, record: logging.LogRecord) -> None:
                seen.append(record.getMessage())
                super().emit(record)

        handler = make_handler(Counting)
        logger_for(handler).info("one %d", 1)
        assert handler.flush(timeout=10)
        assert ["one 1"] == seen
        assert ["one 1"] == [json.loads(r.data)["message"] for r in emulator.records(stream)]

    def test_an_emit_set_on_the_instance_sees_every_record(self, emulator, stream, make_handler):
        """A spy assigned as handler.emit (as mock.patch.object does) is called for each record."""
        handler = make_handler()
        log = logger_for(handler)
        log.info("before the spy")
        seen: List[str] = []
        original = handler.emit

        def spy(record: logging.LogRecord) -> None:
            seen.append(record.getMessage())
            original(record)

        handler.emit = spy
        log.info("spied %d", 1)
        log.info("spied %d", 2)
        assert handler.flush(timeout=10)
        assert ["spied 1", "spied 2"] == seen
        shipped = sorted(json.loads(r.data)["message"] for r in emulator.records(stream))
        assert ["before the spy", "spied 1", "spied 2"] == shipped

    def test_an_event_without_the_stdlib_state_still_delivers(
        self, emulator, stream, make_handler, monkeypatch
    ):
        """A threading.Event replaced by one that keeps no ``_flag`` (a patched runtime) is
        only asked through is_set(): every batch still wakes the flusher."""
        real_event = threading.Event

        class OpaqueEvent:
            def __init__(self) -> None:
                self._inner = real_event()

            def set(self) -> None:
                self._inner.set()

            def clear(self) -> None:
                self._inner.clear()

            def is_set(self) -> bool:
                return self._inner.is_set()

            def wait(self, timeout: Any = None) -> bool:
                return self._inner.wait(timeout)

        monkeypatch.setattr(threading, "Event", OpaqueEvent)  # for the flusher's events only
        handler = make_handler(max_batch_records=10, flush_interval=60.0)
        monkeypatch.undo()
        log = logger_for(handler)
        for i in range(30):
            log.info("opaque %d", i)
        # Three full batches woke the flusher: they arrive long before the 60 s interval.
        stored = emulator.wait_for(stream, 30, timeout=20)
        assert {f"opaque {i}" for i in range(30)} == {json.loads(r.data)["message"] for r in stored}

    def test_pipelined_lanes_keep_per_key_order(self, emulator, stream, make_handler):
        """With max_in_flight=4 every record arrives and each key keeps its order."""
        emulator.set_delay(0.02, "PutRecords")
        handler = make_handler(
            max_in_flight=4, max_batch_records=20, partition_key=lambda record: record.key
        )
        handler.setFormatter(logging.Formatter("%(key)s %(message)s"))
        log = logger_for(handler)
        keys = [f"k{n}" for n in range(8)]
        for i in range(400):
            log.info("%04d", i, extra={"key": keys[i % 8]})
        assert handler.flush(timeout=20)
        stored = [r.data.decode() for r in emulator.records(stream)]
        assert 400 == len(stored)
        for key in keys:
            mine = [s for s in stored if s.startswith(key + " ")]
            assert 50 == len(mine)
            assert sorted(mine) == mine

    def test_client_side_rate_limit_spaces_requests(self, emulator, stream, make_handler):
        """max_records_per_second spreads the flusher's requests over one-second windows."""
        handler = make_handler(
            max_records_per_second=100, max_batch_records=50, flush_interval=0.01
        )
        log = logger_for(handler)
        for i in range(200):
            log.info("rl%d", i)
        emulator.wait_for(stream, 200, timeout=10)
        puts = [e.time for e in emulator.requests if e.operation == "PutRecords"]
        # 4 requests of 50 at 100/s: two windows of two requests, the second a window later.
        assert (4, True) == (len(puts), puts[-1] - puts[0] >= 1.0)

    @pytest.mark.parametrize(("auto", "throttled"), [(True, False), (False, True)])
    def test_auto_rate_limit_sizes_to_the_stream(
        self, emulator, stream, make_handler, auto, throttled
    ):
        """auto_rate_limit paces sends to the stream's partitions, so DIS.4303 stays away."""
        emulator.enforce_rate_limits()
        handler = plain(make_handler(auto_rate_limit=auto, max_batch_records=300))
        log = logger_for(handler)
        for i in range(4000):
            log.info("r%d", i)
        assert handler.flush(timeout=30)
        stats = handler.stats
        operations = {e.operation for e in emulator.requests}
        assert (4000, throttled, auto) == (
            stats.sent,
            stats.retried > 0,
            "DescribeStream" in operations,
        )

    @pytest.mark.parametrize("auto", [False, True], ids=["throttled", "auto_rate_limit"])
    def test_batches_of_1000_for_one_key_keep_their_order_at_the_partition_limit(
        self, emulator, stream, make_handler, auto
    ):
        """max_batch_records=1000 with one partition key (README, "Logging in CPU-bound bursts"):
        each request carries a whole second's budget of a COMMON partition, so DIS throttles the
        rest; it is sent again, in order. With auto_rate_limit, batches are cut to the window and
        nothing is throttled."""
        emulator.enforce_rate_limits()
        handler = plain(
            make_handler(max_batch_records=1000, partition_key="k", auto_rate_limit=auto)
        )
        log = logger_for(handler)
        for i in range(2500):
            log.info("r%d", i)
        assert handler.flush(timeout=30)
        stats = handler.stats
        messages = [r.data.decode() for r in emulator.records(stream)]
        assert (2500, 0, 0) == (stats.sent, stats.dropped, stats.failed)
        assert [f"r{i}" for i in range(2500)] == messages
        assert (not auto) == (stats.retried > 0)

    def test_dict_config_with_string_values(self, emulator, stream, handlers):
        """dictConfig builds the handler from string values and it delivers."""
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {
                    "dis": {
                        "class": "dis_logging.handler.DISHandler",
                        "stream_name": stream,
                        "endpoint": emulator.url,
                        "project_id": emulator.project_id,
                        "ak": emulator.ak,
                        "sk": emulator.sk,
                        "flush_interval": "0.05",
                        "max_batch_records": "100",
                        "allow_insecure_http": "false",
                    }
                },
                "loggers": {"dictcfg": {"handlers": ["dis"], "level": "INFO", "propagate": False}},
            }
        )
        log = logging.getLogger("dictcfg")
        handler = log.handlers[0]
        assert isinstance(handler, DISHandler)
        handlers.append(handler)
        log.info("from dictConfig")
        assert handler.flush(timeout=10)
        assert 1 == len(emulator.records(stream))
        log.handlers.clear()


class TestFailures:
    def test_the_flusher_outlives_a_callable_raising_system_exit(
        self, emulator, stream, make_handler, capfd
    ):
        """A token callable raising SystemExit on the flusher thread is reported and retried;
        the thread keeps running and the records arrive without a flush()."""
        calls: List[str] = []

        def token() -> str:
            calls.append(threading.current_thread().name)
            if len(calls) == 1:
                raise SystemExit(3)
            return str(emulator.issue_token())

        handler = plain(make_handler(token=token))
        log = logger_for(handler)
        for i in range(600):  # more than one batch: the flusher sends without being asked
            log.info("r%03d", i)
        emulator.wait_for(stream, 600, timeout=20)
        assert [f"r{i:03d}".encode() for i in range(600)] == sorted(
            r.data for r in emulator.records(stream)
        )
        assert calls[0].startswith("dis-logging")
        assert "unexpected error in the flusher (it keeps running): SystemExit(3)" in (
            capfd.readouterr().err
        )

    def test_unknown_stream_reported_once_without_spinning(self, emulator, make_handler, capfd):
        """An unknown stream fails the records, is reported once, and does not spin."""
        handler = make_handler(stream_name="no-such-stream", max_batch_records=10)
        log = logger_for(handler)
        for i in range(100):
            log.info("lost %d", i)
        assert not handler.flush(timeout=5)
        time.sleep(0.3)  # let the flusher show whether it spins (it must stay idle)
        stats = handler.stats
        assert (100, 0, 0) == (stats.failed, stats.sent, stats.queued)
        puts = [r for r in emulator.requests if r.operation == "PutRecords"]
        assert len(puts) <= 10
        err = capfd.readouterr().err
        assert 1 == err.count("DIS.4301")
        assert "DIS.4301" in (stats.last_error or "")

    def test_overflow_drop_oldest_exact(self, emulator, stream, make_handler):
        """With a full buffer, drop_oldest keeps the newest records and counts the rest exactly."""
        handler = plain(make_handler(max_queue_records=10, flush_interval=60))
        log = logger_for(handler)
        for i in range(25):
            log.info("o%02d", i)
        stats = handler.stats
        assert (25, 15, 10) == (stats.emitted, stats.dropped, stats.queued)
        assert not handler.flush(timeout=10)  # records emitted before it were dropped
        assert [f"o{i:02d}".encode() for i in range(15, 25)] == sorted(
            r.data for r in emulator.records(stream)
        )

    def test_overflow_drop_newest_exact(self, emulator, stream, make_handler):
        """drop_newest keeps the oldest records and counts the refused ones exactly."""
        handler = plain(
            make_handler(max_queue_records=10, flush_interval=60, overflow="drop_newest")
        )
        log = logger_for(handler)
        for i in range(25):
            log.info("n%02d", i)
        assert {"overflow": 15} == handler.stats.drops
        assert not handler.flush(timeout=10)  # records emitted before it were dropped
        assert [f"n{i:02d}".encode() for i in range(10)] == sorted(
            r.data for r in emulator.records(stream)
        )

    def test_a_cut_record_with_a_key_fits_a_small_queue(self, emulator, stream, make_handler):
        """With max_queue_bytes under 1 MB, max_record_bytes is that bound; a record cut to it
        and given a partition key is shipped cut (it was dropped as overflow, queue empty)."""
        handler = plain(make_handler(max_queue_bytes=1000, partition_key="key"))
        logger_for(handler).warning("x" * 5000)
        assert handler.flush(timeout=10)
        assert [1000] == [len(record.data) for record in emulator.records(stream)]

    def test_warnings_survive_shedding(self, emulator, stream, make_handler):
        """When the buffer overflows, INFO records are shed and WARNING records are kept."""
        handler = plain(make_handler(max_queue_records=10, flush_interval=60))
        log = logger_for(handler)
        for i in range(5):
            log.warning("w%d", i)
        for i in range(30):
            log.info("i%d", i)
        assert not handler.flush(timeout=10)  # INFO records were shed: not all were sent
        stored = {r.data for r in emulator.records(stream)}
        assert {f"w{i}".encode() for i in range(5)} <= stored
        assert 10 == len(stored)

    @pytest.mark.parametrize("timeout", [1e300, float("inf")])
    def test_flush_with_a_timeout_beyond_any_wait_sends(
        self, emulator, stream, make_handler, timeout
    ):
        """flush(1e300) or flush(inf) sends and returns True (it failed with OverflowError
        inside the threading module, reported as "flush failed", and returned False)."""
        handler = make_handler(flush_interval=60)
        logger_for(handler).info("x")
        assert handler.flush(timeout=timeout)
        assert 1 == len(emulator.records(stream))

    def test_flush_returns_false_when_unreachable(self, emulator, stream, make_handler):
        """flush returns False within its timeout when DIS cannot be reached."""
        handler = make_handler(flush_interval=60, close_timeout=0.2)
        emulator.stop()
        logger_for(handler).info("x")
        start = time.monotonic()
        assert not handler.flush(timeout=0.5)
        assert time.monotonic() - start < 1.5
        assert 1 == handler.stats.queued

    def test_close_with_emulator_stopped_is_bounded(self, emulator, stream, make_handler, capfd):
        """close() with DIS gone returns within close_timeout and reports what it dropped."""
        handler = make_handler(close_timeout=0.5)
        log = logger_for(handler)
        emulator.stop()
        for i in range(20):
            log.info("x%d", i)
        start = time.monotonic()
        handler.close()
        assert time.monotonic() - start < 0.5 + 0.5
        stats = handler.stats
        assert (20, 0, 0) == (stats.dropped, stats.sent, stats.queued)
        assert "20 record(s) could not be sent" in capfd.readouterr().err

    def test_flush_then_close_share_one_budget(self, emulator, stream, make_handler):
        """logging.shutdown's flush() then close() with DIS gone take one close_timeout, not two."""
        handler = make_handler(close_timeout=1.0)
        log = logger_for(handler)
        emulator.stop()
        for i in range(20):
            log.info("x%d", i)
        start = time.monotonic()
        handler.flush()
        handler.close()
        assert (True, 20) == (time.monotonic() - start < 1.0 + 0.5, handler.stats.dropped)

    def test_an_old_flush_does_not_shorten_close(self, emulator, stream, make_handler):
        """close() long after a flush() gets its whole close_timeout for what came since."""
        handler = plain(make_handler(close_timeout=1.0))
        log = logger_for(handler)
        log.info("early")
        assert handler.flush()
        time.sleep(0.9)  # the application goes on; then shuts down with a slow DIS
        emulator.set_delay(0.4, "PutRecords")
        log.info("late")
        handler.close()
        stats = handler.stats
        assert (2, 0, [b"early", b"late"]) == (
            stats.sent,
            stats.dropped,
            sorted(r.data for r in emulator.records(stream)),
        )

    def test_close_with_a_slow_iam_is_bounded(self, emulator, stream, make_handler):
        """close() keeps to close_timeout while the IAM token request hangs."""
        handler = make_handler(
            username=emulator.username,
            password=emulator.password,
            domain_name=emulator.domain_name,
            close_timeout=0.5,
        )
        emulator.set_delay(3.0, "CreateToken")
        logger_for(handler).info("needs a token")
        start = time.monotonic()
        handler.close()
        assert (True, 1) == (time.monotonic() - start < 0.5 + 0.5, handler.stats.emitted)

    def test_a_flusher_that_could_not_start_is_started_later(
        self, emulator, stream, make_handler, monkeypatch
    ):
        """When no thread can be made, records wait, and a later record starts the flusher."""
        refusals: List[str] = []
        real_start = threading.Thread.start

        def start_once_refused(thread):
            if thread.name.startswith("dis-logging") and not refusals:
                refusals.append(thread.name)
                raise RuntimeError("can't start new thread")
            real_start(thread)

        monkeypatch.setattr(threading.Thread, "start", start_once_refused)
        monkeypatch.setattr("dis_logging.handler.FLUSHER_START_RETRY", 0.0)
        handler = plain(make_handler())
        log = logger_for(handler)
        log.info("first")
        log.info("second")
        stored = [r.data for r in emulator.wait_for(stream, 2, timeout=10)]
        assert (1, [b"first", b"second"]) == (len(refusals), sorted(stored))

    def test_flush_after_close_sends_nothing(self, emulator, stream, make_handler):
        """flush() on a closed handler makes no request and changes no counter."""
        handler = make_handler(close_timeout=0.3)
        log = logger_for(handler)
        emulator.stop()
        log.info("lost")
        handler.close()
        before = handler.stats
        assert (False, before) == (handler.flush(), handler.stats)

    @pytest.mark.parametrize("flusher_in_flight", [True, False])
    def test_close_with_a_blackholed_endpoint_is_bounded(self, emulator, flusher_in_flight):
        """close() returns within close_timeout + 0.5 s when requests get no reply at all."""
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)  # connections queue in the backlog; nothing ever answers
        try:
            handler = DISHandler(
                "s",
                endpoint=f"http://127.0.0.1:{hole.getsockname()[1]}",
                project_id=emulator.project_id,
                ak=emulator.ak,
                sk=emulator.sk,
                request_timeout=30,
                close_timeout=0.5,
                flush_interval=0.01 if flusher_in_flight else 60,
                diagnostics=lambda line: None,
            )
            log = logger_for(handler)
            for i in range(10):
                log.info("void %d", i)
            if flusher_in_flight:
                deadline = time.monotonic() + 5
                while handler.stats.in_flight == 0 and time.monotonic() < deadline:
                    time.sleep(0.005)
            start = time.monotonic()
            handler.close()
            assert time.monotonic() - start < 0.5 + 0.5
            assert 0 == handler.stats.sent
        finally:
            hole.close()

    def test_close_is_idempotent_and_delivers(self, emulator, stream, make_handler):
        """close() sends what is queued; a second close() does nothing."""
        handler = make_handler(flush_interval=60)
        logger_for(handler).info("last words")
        handler.close()
        handler.close()
        assert 1 == len(emulator.records(stream))

    def test_a_close_racing_another_close_returns_once_it_is_done(
        self, emulator, stream, make_handler
    ):
        """A close() while another thread's close() is still sending waits for it: when it
        returns, every record is sent or counted (it returned at once, with 20 still queued,
        and a process ending then lost them without a word)."""
        emulator.set_delay(0.3, "PutRecords")
        handler = make_handler(flush_interval=60, max_batch_records=10, partition_key="one")
        log = logger_for(handler)
        for i in range(30):
            log.info("r%d", i)
        first = threading.Thread(target=handler.close)
        first.start()
        try:
            emulator.wait_for(stream, 10)  # the first close() is sending now
            handler.close()
            stats = handler.stats
            assert (0, 30) == (stats.queued, stats.sent)
        finally:
            first.join(10)

    def test_an_on_failure_hook_that_closes_does_not_stall_close(
        self, emulator, stream, make_handler
    ):
        """A hook on the flusher thread calling close() while the main thread's close() joins
        that thread returns at once rather than wait for it (that close() would then wait its
        whole close_timeout for the thread)."""
        hooked = threading.Event()
        holder: List[DISHandler] = []

        def close_in_hook(records: List[bytes], reason: str) -> None:
            hooked.set()
            handler = holder[0]
            deadline = time.monotonic() + 10
            while not handler._closed and time.monotonic() < deadline:
                time.sleep(0.01)  # until the main thread's close() has begun
            handler.close()

        emulator.fail_records("DIS.4200", every=1)  # rejected for good: the hook runs
        handler = make_handler(close_timeout=30, on_failure=close_in_hook)
        holder.append(handler)
        logger_for(handler).info("rejected")
        assert hooked.wait(10)
        start = time.monotonic()
        handler.close()
        assert time.monotonic() - start < 10
        assert 1 == handler.stats.failed

    def test_an_on_failure_hook_that_closes_first_sends_what_waits(
        self, emulator, stream, make_handler
    ):
        """close() called first by an on_failure hook (on the background thread, which holds
        the send slot) sends the records still queued on that thread: it waited for the slot
        until close_timeout and then dropped them."""
        closed = threading.Event()
        holder: List[DISHandler] = []

        def close_in_hook(records: List[bytes], reason: str) -> None:
            holder[0].close()
            closed.set()

        emulator.fail_records("DIS.4200", every=1, limit=1)  # the first record only, for good
        emulator.set_delay(0.2, "PutRecords")  # every record is logged before the hook runs
        handler = make_handler(close_timeout=30, on_failure=close_in_hook, max_batch_records=1)
        holder.append(handler)
        log = logger_for(handler)
        for message in ("rejected", "second", "third"):
            log.info(message)
        assert closed.wait(10)
        stats = handler.stats
        assert (2, 1, {}) == (stats.sent, stats.failed, stats.drops)
        assert ["second", "third"] == sorted(
            json.loads(r.data)["message"] for r in emulator.records(stream)
        )

    def test_an_on_failure_hook_that_flushes_does_not_stall_sending(
        self, emulator, stream, make_handler
    ):
        """flush() called by an on_failure hook on the background thread returns False at once:
        it waited for the send slot that very thread held, up to close_timeout, and nothing was
        sent meanwhile."""
        results: List[bool] = []
        holder: List[DISHandler] = []

        def flush_in_hook(records: List[bytes], reason: str) -> None:
            results.append(holder[0].flush())

        emulator.fail_records("DIS.4200", every=1, limit=1)  # the first record only, for good
        # One record per request: the second one waits in the queue while the hook runs.
        handler = make_handler(close_timeout=30, on_failure=flush_in_hook, max_batch_records=1)
        holder.append(handler)
        log = logger_for(handler)
        log.info("rejected")
        log.info("delivered")
        handler.flush(timeout=10)
        assert [False] == results
        assert ["delivered"] == [json.loads(r.data)["message"] for r in emulator.records(stream)]

    def test_emit_after_close_is_counted(self, emulator, stream, make_handler):
        """A record emitted after close() is dropped and counted, without raising."""
        handler = make_handler()
        handler.close()
        logger_for(handler).info("too late")
        assert {"closed": 1} == handler.stats.drops

    def test_stats_invariant_at_quiescence(self, emulator, stream, make_handler):
        """emitted == sent + dropped + failed + queued once everything settled."""
        emulator.fail_records("DIS.4301", every=7)
        handler = make_handler(max_queue_records=50)
        log = logger_for(handler)
        for i in range(200):
            log.info("s%d", i)
        handler.flush(timeout=10)
        stats = handler.stats
        assert quiescent(stats)
        assert stats.failed > 0


class TestSpool:
    def test_outage_goes_to_spool_and_is_replayed(self, emulator, stream, make_handler, tmp_path):
        """During an outage batches move to the spool; they are delivered when DIS returns."""
        handler = plain(make_handler(spool_dir=str(tmp_path), flush_interval=60, close_timeout=1))
        log = logger_for(handler)
        emulator.stop()
        for i in range(50):
            log.info("sp%02d", i)
        assert not handler.flush(timeout=0.5)
        stats = handler.stats
        assert (50, 0, 0) == (stats.spooled, stats.queued, stats.dropped)
        emulator.start()
        assert handler.flush(timeout=10)
        assert sorted(f"sp{i:02d}".encode() for i in range(50)) == sorted(
            r.data for r in emulator.records(stream)
        )
        assert (50, 0) == (handler.stats.sent, handler.stats.spooled)

    def test_close_keeps_leftovers_in_spool(self, emulator, stream, make_handler, tmp_path, capfd):
        """Records left at close() go to the spool instead of being dropped."""
        handler = make_handler(spool_dir=str(tmp_path), flush_interval=60, close_timeout=0.3)
        emulator.stop()
        for i in range(10):
            logger_for(handler).info("left %d", i)
        handler.close()
        stats = handler.stats
        assert (0, 0, 10) == (stats.dropped, stats.queued, stats.spooled)
        assert "10 record(s) were kept in the spool" in capfd.readouterr().err


class TestGuards:
    def test_a_subclass_filter_is_asked_without_added_filters(self, emulator, stream, make_handler):
        """A subclass that overrides filter() (and adds no Filter) has it asked for every record,
        as logging.Handler.handle() does; a record it refuses is not shipped."""

        class Redacting(DISHandler):
            def filter(self, record: logging.LogRecord) -> bool:
                return "password" not in record.getMessage()

        handler = make_handler(Redacting)
        log = logger_for(handler)
        log.info("user %s logged in", "ann")
        log.info("password is %s", "hunter2")
        assert handler.flush(timeout=10)
        shipped = [json.loads(r.data)["message"] for r in emulator.records(stream)]
        assert ["user ann logged in"] == shipped

    def test_an_interrupt_inside_handle_leaves_the_thread_free(
        self, emulator, stream, make_handler
    ):
        """A KeyboardInterrupt raised inside handle() (here by a filter, as a signal handler
        would) reaches the caller, and the thread's next records are shipped, not refused as
        reentrant."""
        handler = make_handler()
        interrupt = [True]

        def interrupting(record: logging.LogRecord) -> bool:
            if interrupt:
                interrupt.clear()
                raise KeyboardInterrupt
            return True

        handler.addFilter(interrupting)
        log = logger_for(handler)
        with pytest.raises(KeyboardInterrupt):
            log.info("interrupted")
        log.info("after")
        assert handler.flush(timeout=10)
        stats = handler.stats
        assert ({}, ["after"]) == (
            dict(stats.drops),
            [json.loads(r.data)["message"] for r in emulator.records(stream)],
        )

    def test_no_feedback_loop_on_root_at_debug(self, emulator, stream, make_handler):
        """On the root logger at DEBUG with urllib3 debug logging, only app records are shipped."""
        handler = make_handler()
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        logging.getLogger("urllib3").setLevel(logging.DEBUG)
        try:
            for i in range(20):
                logging.getLogger("app.loop").info("app %d", i)
            assert handler.flush(timeout=10)
            # Anything the first flush's own HTTP traffic logged would be queued now; send it.
            handler.flush(timeout=5)
        finally:
            root.removeHandler(handler)
            logging.getLogger("urllib3").setLevel(logging.NOTSET)
        loggers = collections.Counter(
            json.loads(r.data)["logger"] for r in emulator.records(stream)
        )
        assert {"app.loop": 20} == dict(loggers)

    @pytest.mark.parametrize(
        "name", ["dis_logging", "dis_logging.client", "requests.adapters", "urllib3.connectionpool"]
    )
    def test_records_from_library_loggers_are_ignored(self, make_handler, name):
        """Records of the dis_logging, requests and urllib3 loggers are never emitted."""
        handler = make_handler()
        record = logging.LogRecord(name, logging.ERROR, "p", 1, "internal", (), None)
        assert (False, 0) == (handler.handle(record), handler.stats.emitted)

    @pytest.mark.parametrize("name", ["requests_app", "urllib3x.worker", "dis_logging_demo"])
    def test_lookalike_logger_names_are_shipped(self, make_handler, name):
        """A logger whose name merely starts with a library's name is the application's own."""
        handler = make_handler()
        record = logging.LogRecord(name, logging.ERROR, "p", 1, "mine", (), None)
        assert (True, 1) == (handler.handle(record), handler.stats.emitted)

    def test_emit_after_close_counts_a_drop(self, make_handler):
        """A record emitted after close() is dropped, counted, and never raises."""
        handler = plain(make_handler())
        handler.close()
        logger_for(handler).info("late")
        stats = handler.stats
        assert (1, 1, 0) == (stats.emitted, stats.dropped, stats.queued)

    def test_secrets_never_leak(self, emulator, stream, make_handler, capfd):
        """No password, token or SK shows in output, stats, errors or reprs, even on failures."""
        token = emulator.issue_token()
        by_token = make_handler(token=token, close_timeout=0.2)
        by_password = make_handler(
            username=emulator.username,
            password=emulator.password,
            domain_name=emulator.domain_name,
            close_timeout=0.2,
        )
        by_key = make_handler(close_timeout=0.2)
        emulator.fail_next(3, status=500)
        for handler in (by_token, by_password, by_key):
            logger_for(handler).info("x")
            handler.flush(timeout=5)
        emulator.stop()
        for handler in (by_token, by_password, by_key):
            logger_for(handler).info("y")
            handler.flush(timeout=0.2)
        text = capfd.readouterr()
        blob = "".join(
            [text.out, text.err]
            + [
                repr(h) + repr(h.config) + repr(h.stats) + repr(h._client)
                for h in (by_token, by_password, by_key)
            ]
        )
        for secret in (token, emulator.password, emulator.sk):
            assert secret not in blob

    def test_hostile_records_never_raise(self, emulator, stream, make_handler, capfd):
        """Non-UTF-8 bytes, surrogates, bad %-args, raising __str__ and 5 MB messages all ship."""

        class Hostile:
            def __str__(self) -> str:
                raise RuntimeError("no str")

            def __repr__(self) -> str:
                raise RuntimeError("no repr")

        handler = make_handler(max_record_bytes=100_000)
        log = logger_for(handler)
        log.info(b"\xff\xfe raw bytes")
        log.info("surrogate \udcff here")
        log.info("bad %d %d", "x")
        log.info(Hostile())
        log.info("arg %s", Hostile())
        log.info("big %s", "z" * 5_000_000)
        log.info("extra", extra={"obj": Hostile(), "raw": b"\x80"})
        assert handler.flush(timeout=10)
        records = emulator.records(stream)
        assert 7 == len(records)
        assert all(len(r.data) <= 100_000 for r in records)
        for record in records:
            json.loads(record.data)
        assert "Logging error" not in capfd.readouterr().err

    def test_an_oversized_json_text_nested_too_deep_ships_cut(self, emulator, stream, make_handler):
        """A custom formatter's oversized JSON nested past the parser's limit is cut as bytes
        and shipped; the RecursionError of parsing it never reaches the caller."""
        depth = 50_000

        class DeepJSON(logging.Formatter):
            def format(self, record: logging.LogRecord) -> str:
                return '{"a":' + "[" * depth + "]" * depth + "}"

        handler = make_handler(max_record_bytes=1_000)
        handler.setFormatter(DeepJSON())
        logger_for(handler).error("deep")
        assert handler.flush(timeout=10)
        [record] = emulator.records(stream)
        assert (True, b'{"a":[[[', True) == (
            len(record.data) <= 1_000,
            record.data[:8],
            b"...[truncated " in record.data[-40:],
        )

    def test_config_error_names_field(self, emulator):
        """A bad keyword raises ConfigError naming it, before any network use."""
        with pytest.raises(ConfigError) as info:
            DISHandler(
                "ok-stream",
                endpoint=emulator.url,
                project_id="p",
                ak="a",
                sk="s",
                flush_interval="-1",
            )
        assert "flush_interval" == info.value.field
        assert [] == emulator.requests

    def test_constructor_does_no_network_io(self, emulator, stream, make_handler):
        """Constructing a handler sends nothing and starts no thread."""
        before = {t.name for t in threading.enumerate()}
        make_handler()
        assert [] == emulator.requests
        assert before == {t.name for t in threading.enumerate()}


class TestLevel:
    @pytest.mark.parametrize(("given", "expected"), [("20", 20), ("info", 20), (10, 10)])
    def test_level_as_a_name_or_number(self, emulator, stream, make_handler, given, expected):
        """The handler level takes what dictConfig and fileConfig pass: names and digit strings."""
        assert expected == make_handler(level=given).level

    @pytest.mark.parametrize("given", ["INFOO", -1, "", 2.5])
    def test_bad_level_is_a_config_error_naming_it(self, given):
        """A level that is no logging level fails at construction with a ConfigError on level."""
        with pytest.raises(ConfigError) as info:
            DISHandler(
                "s", given, endpoint="http://127.0.0.1:9", project_id="p" * 32, ak="a", sk="b"
            )
        assert "level" == info.value.field


class TestSignature:
    def test_every_setting_is_an_explicit_keyword(self):
        """The constructor lists each HandlerConfig setting as a keyword-only argument, no **."""
        import inspect

        from dis_logging.config import HandlerConfig

        parameters = inspect.signature(DISHandler.__init__).parameters
        kinds = {
            p.kind for name, p in parameters.items() if name not in ("self", "stream_name", "level")
        }
        assert [inspect.Parameter.KEYWORD_ONLY] == list(kinds)
        assert set(HandlerConfig.keywords()) == set(parameters) - {"self", "level"}

    def test_handler_settings_match_the_signature(self):
        """HandlerSettings (the processor's **kwargs type) has the handler's names and types."""
        import inspect

        from dis_logging.config import HandlerSettings

        parameters = inspect.signature(DISHandler.__init__).parameters
        expected = {
            name: str(p.annotation)
            for name, p in parameters.items()
            if name not in ("self", "partition_key")
        }
        declared = {
            name: getattr(annotation, "__forward_arg__", annotation)
            for name, annotation in HandlerSettings.__annotations__.items()
        }
        assert expected == declared

    def test_every_unknown_keyword_is_named_with_a_suggestion(self):
        """Two misspelled options raise one ConfigError naming both and the closest names."""
        with pytest.raises(ConfigError) as info:
            DISHandler("s", flush_intervall=1.0, max_queue_record=5, bogus=1)  # type: ignore[call-arg]
        assert (
            "flush_intervall, max_queue_record, bogus: unknown settings: 'flush_intervall' "
            "(did you mean 'flush_interval'?), 'max_queue_record' (did you mean "
            "'max_queue_records'?), 'bogus'"
        ) == str(info.value)

    def test_dictconfig_reports_every_unknown_option(self, emulator, stream):
        """dictConfig's error for a handler entry names all of its misspelled options."""
        config = {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "dis": {
                    "class": "dis_logging.DISHandler",
                    "stream_name": stream,
                    "endpoint": emulator.url,
                    "flush_intervall": "1.0",
                    "overflw": "block",
                }
            },
        }
        with pytest.raises(ValueError, match="Unable to configure handler 'dis'") as info:
            logging.config.dictConfig(config)
        cause = info.value.__cause__
        assert ("flush_intervall, overflw", ConfigError) == (
            getattr(cause, "field", None),
            type(cause),
        )

    def test_strings_from_dictconfig_are_accepted(self, make_handler):
        """Numbers, booleans and levels given as strings are converted."""
        handler = make_handler(
            flush_interval="0.5", max_batch_records="10", auto_rate_limit="false", level="INFO"
        )
        assert (0.5, 10, False, logging.INFO) == (
            handler.config.flush_interval,
            handler.config.max_batch_records,
            handler.config.auto_rate_limit,
            handler.level,
        )


def _socket_count() -> int:
    import os

    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{name}").startswith("socket:")
        except OSError:
            continue
    return count


class TestDisabled:
    def test_environment_switch_needs_no_credentials_and_starts_nothing(self, monkeypatch):
        """DIS_LOGGING_ENABLED=false: no settings needed, no thread, no socket, drops counted."""
        monkeypatch.setenv("DIS_LOGGING_ENABLED", "false")
        sockets = _socket_count()
        handler = DISHandler()
        log = logger_for(handler)
        try:
            for number in range(3):
                log.info("record %d", number)
            threads = [t.name for t in threading.enumerate() if t.name.startswith("dis-logging")]
            assert ([], sockets) == (threads, _socket_count())
            assert (3, 3, 0, {"disabled": 3}) == (
                handler.stats.emitted,
                handler.stats.dropped,
                handler.stats.sent,
                handler.stats.drops,
            )
        finally:
            handler.close()

    def test_keyword_switch_wins_over_environment(self, monkeypatch, emulator, stream):
        """enabled=False turns a fully configured handler off; nothing reaches the emulator."""
        monkeypatch.setenv("DIS_LOGGING_ENABLED", "true")
        handler = DISHandler(
            stream,
            endpoint=emulator.url,
            project_id=emulator.project_id,
            ak=emulator.ak,
            sk=emulator.sk,
            enabled="false",
        )
        try:
            logger_for(handler).warning("not shipped")
            handler.enqueue(b"{}")
            assert (False, 2, [], "<DISHandler disabled level=NOTSET>") == (
                handler.flush(timeout=1.0),
                handler.stats.drops["disabled"],
                emulator.records(stream),
                repr(handler),
            )
        finally:
            handler.close()
            handler.close()

    def test_disabled_handler_in_dictconfig_without_credentials(self, monkeypatch):
        """A dictConfig with a disabled handler and no credentials configures without error."""
        monkeypatch.setenv("DIS_LOGGING_ENABLED", "0")
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"dis": {"class": "dis_logging.DISHandler", "stream_name": "app"}},
                "loggers": {"disabled_app": {"handlers": ["dis"], "level": "INFO"}},
            }
        )
        [handler] = logging.getLogger("disabled_app").handlers
        try:
            logging.getLogger("disabled_app").info("dropped")
            assert {"disabled": 1} == handler.stats.drops  # type: ignore[attr-defined]
        finally:
            logging.getLogger("disabled_app").removeHandler(handler)
            handler.close()


class TestOnFailure:
    def test_records_rejected_for_good_reach_the_hook_on_the_flusher(self, make_handler, emulator):
        """A batch DIS rejects for good is passed to on_failure on the flusher thread."""
        calls = []
        called = threading.Event()

        def keep(records, reason):
            calls.append((records, reason, threading.current_thread().name))
            called.set()

        emulator.fail_next(1, status=400, error_code="DIS.4200")
        handler = plain(make_handler(on_failure=keep))
        logger_for(handler).error("lost one")
        assert called.wait(10.0)
        assert ([([b"lost one"], "failed", "dis-logging-flusher")], 1) == (
            calls,
            handler.stats.failed,
        )

    def test_records_left_at_close_reach_the_hook(self, handlers):
        """Records still queued when close() gives up are passed to on_failure with "close"."""
        calls = []
        handler = DISHandler(
            "s",
            endpoint="http://127.0.0.1:9",
            project_id="p",
            token="t",
            close_timeout=0.2,
            flush_interval=60.0,
            max_retry_time=60.0,
            on_failure=lambda records, reason: calls.append((sorted(records), reason)),
            diagnostics=lambda line: None,
        )
        handlers.append(handler)
        plain(handler)
        for text in ("a", "b"):
            logger_for(handler).warning(text)
        handler.close()
        assert [([b"a", b"b"], "close")] == calls

    def test_a_raising_hook_is_reported_once(self, make_handler, emulator):
        """Exceptions from on_failure never reach the flusher and are reported only once."""
        lines: List[str] = []
        calls: List[str] = []
        called_twice = threading.Event()

        def broken(records, reason):
            calls.append(reason)
            if len(calls) == 2:
                called_twice.set()
            raise RuntimeError("hook is broken")

        emulator.fail_next(2, status=400, error_code="DIS.4200")
        handler = plain(make_handler(on_failure=broken, diagnostics=lines.append))
        log = logger_for(handler)
        log.error("one")
        assert handler.flush(timeout=5.0) is False
        log.error("two")
        assert handler.flush(timeout=5.0) is False
        assert called_twice.wait(5.0)
        log.error("three")
        assert handler.flush(timeout=5.0) is False  # "one" and "two" failed earlier
        hook_lines = [line for line in lines if "on_failure" in line]
        assert (1, 1) == (len(hook_lines), handler.stats.sent)
        assert "RuntimeError: hook is broken" in hook_lines[0]

    def test_dotted_path_is_imported(self, make_handler):
        """on_failure accepts a dotted path, as dictConfig passes it."""
        handler = make_handler(on_failure="ext://test_handler.discard_records")
        assert discard_records is handler.config.on_failure


def discard_records(records, reason):
    del records, reason


class TestDiagnosticsHint:
    def test_last_error_names_the_cause_in_words(self, handlers):
        """stats.last_error of a refused connection is one readable line, not urllib3's text."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        lines: List[str] = []
        handler = DISHandler(
            "s",
            endpoint=f"http://127.0.0.1:{port}",
            project_id="p",
            token="static-test-token",
            max_retry_time=60.0,
            diagnostics=lines.append,
        )
        handlers.append(handler)
        logger_for(handler).error("x")
        assert handler.flush(timeout=0.5) is False
        last_error = handler.stats.last_error or ""
        assert f"127.0.0.1:{port} refused the connection" in last_error
        assert "HTTPConnectionPool" not in last_error
        assert "\n" not in last_error

    def test_failed_calls_point_to_dis_logging_check(self, make_handler, emulator, stream):
        """A diagnostic about a failed DIS call names `dis-logging check STREAM`."""
        lines: List[str] = []
        emulator.fail_next(1, status=400, error_code="DIS.4200")
        handler = plain(make_handler(diagnostics=lines.append))
        logger_for(handler).error("rejected")
        assert handler.flush(timeout=5.0) is False
        failures = [line for line in lines if "DIS.4200" in line]
        assert failures
        assert all(f"`dis-logging check {stream}`" in line for line in failures)

    def test_server_text_cannot_forge_a_line_in_last_error(self, make_handler, emulator):
        """A newline or escape sequence in a server's error code or message reaches
        stats.last_error, the diagnostics and str() of the error as escapes, so that writing
        any of them to a log cannot start a forged line."""
        from dis_logging.client import DISClient
        from dis_logging.errors import DISError

        forged = "DIS.4200\n2026-12-06 CRITICAL payment approved \x1b[2J"
        lines: List[str] = []
        emulator.create_stream("forged")
        emulator.fail_next(2, status=400, error_code=forged)
        handler = plain(make_handler(stream_name="forged", diagnostics=lines.append))
        logger_for(handler).error("rejected")
        assert handler.flush(timeout=5.0) is False
        with DISClient(emulator.url, emulator.project_id, ak=emulator.ak, sk=emulator.sk) as c:
            with pytest.raises(DISError) as info:
                c.put_records("forged", [(b"x", None)])
        texts = [handler.stats.last_error or "", str(info.value), *lines]
        assert [] == [text for text in texts if "\n" in text or "\x1b" in text]
        assert all("DIS.4200\\n2026-12-06" in text for text in texts[:2])


EXIT_HOOK_SCRIPT = """
import logging, sys
from dis_logging.handler import DISHandler

def keep(records, reason):
    with open(sys.argv[2], "a", encoding="utf-8") as out:
        out.write(reason + " " + " ".join(r.decode() for r in sorted(records)) + "\\n")

handler = DISHandler(
    "s", endpoint=sys.argv[1], project_id="p", token="static-test-token", close_timeout=0.3,
    flush_interval=60, max_retry_time=60, on_failure=keep, diagnostics=lambda line: None,
)
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("exiting")
log.addHandler(handler)
log.warning("a")
log.warning("b")
# no flush, no close: the exit drain gives up on the closed port
"""


def test_on_failure_gets_records_left_at_exit(tmp_path):
    """Records the exit drain could not deliver are passed to on_failure with reason "exit"."""
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    kept = tmp_path / "kept.txt"
    done = subprocess.run(
        [sys.executable, "-c", EXIT_HOOK_SCRIPT, url, str(kept)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (0, "exit a b\n") == (done.returncode, kept.read_text(encoding="utf-8")), done.stderr
