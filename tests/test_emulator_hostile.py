"""One hostile client must not take the emulator down or fool its verifier.

Covers a ``SignedHeaders`` list built to explode the verifier's work, malformed chunked bodies,
a body swapped under an unsigned ``X-Sdk-Content-Sha256``, the documented 441 sub-codes and the
default partition quota. Requests go over real sockets to an emulator on loopback.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import re
import socket
from typing import Dict, Optional, Tuple, Union

import pytest
import requests

from dis_logging.auth import AKSKSigner
from dis_logging.emulator import DISEmulator
from dis_logging.emulator import auth as verifier
from dis_logging.emulator.cli import add_arguments, build
from dis_logging.emulator.state import DEFAULT_PARTITION_QUOTA


def signed_put(
    emu: DISEmulator, stream: str, body: bytes, extra: Optional[Dict[str, str]] = None
) -> Tuple[str, Dict[str, str]]:
    """Return the URL and the headers of a correctly AK/SK-signed PutRecords request."""
    url = f"{emu.url}/v2/{emu.project_id}/records"
    headers = {"Content-Type": "application/json", **(extra or {})}
    headers.update(AKSKSigner(emu.ak, emu.sk).sign("POST", url, headers, body))
    return url, headers


def put_body(stream: str, data: str = "aGVsbG8=") -> bytes:
    return json.dumps({"stream_name": stream, "records": [{"data": data}]}).encode()


def error_code(reply: requests.Response) -> Optional[str]:
    return json.loads(reply.content).get("error_code") if reply.content else None


def raw_exchange(emu: DISEmulator, head: bytes, body: bytes = b"") -> int:
    """Send raw bytes and end the sending side, return the reply's status code."""
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        # The server may answer and close before it has read everything.
        with contextlib.suppress(OSError):
            sock.sendall(head + body)
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])


class TestSignedHeaders:
    def test_repeated_names_are_deduplicated_before_verification(self, emulator, stream):
        """host repeated 20 times in SignedHeaders counts once, so the request verifies."""
        body = put_body(stream)
        url, headers = signed_put(emulator, stream, body)
        signed = re.search(r"SignedHeaders=([^,]+)", headers["Authorization"])
        assert signed is not None
        names = signed.group(1).split(";")
        bloated = ";".join(names + ["host"] * 20)
        headers["Authorization"] = headers["Authorization"].replace(signed.group(1), bloated)
        reply = requests.post(url, data=body, headers=headers, timeout=10)
        assert (200, 1) == (reply.status_code, len(emulator.records(stream)))

    def test_parsed_list_holds_each_name_once(self):
        """The parsed SignedHeaders list keeps the first occurrence of each name, in order."""
        auth = verifier.parse_authorization(
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders="
            + ";".join(["host", "x-sdk-date"] * 20 + ["Host"])
            + ", Signature=00"
        )
        assert ("host", "x-sdk-date") == auth.signed_headers

    def test_header_readings_stay_few_however_many_headers_have_variants(self):
        """Thirty signed UTF-8 headers plus a host with a port give at most four readings to
        try, not 2^31."""
        names = ["host", *(f"x-h{i}" for i in range(30))]
        utf8_latin1 = "caf\u00e9".encode().decode("latin-1")  # how http.server hands it over
        headers = {"host": "127.0.0.1:8080", **{name: utf8_latin1 for name in names[1:]}}
        readings = verifier.SignatureVerifier._header_sets(names, headers)
        assert (4, {"127.0.0.1:8080", "127.0.0.1"}, {utf8_latin1, "caf\u00e9"}) == (
            len(readings),
            {dict(reading)["host"] for reading in readings},
            {dict(reading)["x-h7"] for reading in readings},
        )

    def test_utf8_signed_headers_still_verify(self, emulator, stream):
        """A header value signed as UTF-8 text and sent as UTF-8 bytes still verifies."""
        body = put_body(stream)
        url, headers = signed_put(emulator, stream, body, {"X-Meta": "caf\u00e9"})
        wire: Dict[str, Union[str, bytes]] = {**headers, "X-Meta": "caf\u00e9".encode()}
        assert 200 == requests.post(url, data=body, headers=wire, timeout=10).status_code

    def test_too_many_names_are_refused_before_signature_work(self, emulator, stream):
        """More distinct names than the cap is a 441 DIS.4101 without any signature attempt."""
        body = put_body(stream)
        url, headers = signed_put(emulator, stream, body)
        many = ";".join(f"x-h{i}" for i in range(verifier.MAX_SIGNED_HEADERS + 1))
        headers["Authorization"] = re.sub(
            r"SignedHeaders=[^,]+", f"SignedHeaders={many}", headers["Authorization"]
        )
        reply = requests.post(url, data=body, headers=headers, timeout=10)
        assert (441, "DIS.4101", []) == (
            reply.status_code,
            error_code(reply),
            emulator.records(stream),
        )


class TestPayloadHash:
    def test_unsigned_content_sha256_cannot_swap_the_body(self, emulator, stream):
        """A declared payload hash that is not signed is ignored: a swapped body fails."""
        original = put_body(stream, "b3JpZ2luYWw=")
        url, headers = signed_put(emulator, stream, original)
        headers["X-Sdk-Content-Sha256"] = verifier.sha256_hex(original)
        forged = put_body(stream, "Zm9yZ2Vk")
        reply = requests.post(url, data=forged, headers=headers, timeout=10)
        assert (441, "DIS.4112", []) == (
            reply.status_code,
            error_code(reply),
            emulator.records(stream),
        )

    def test_unsigned_content_sha256_with_the_real_body_still_verifies(self, emulator, stream):
        """An unsigned declared hash is ignored, so the untouched request still verifies."""
        body = put_body(stream)
        url, headers = signed_put(emulator, stream, body)
        headers["X-Sdk-Content-Sha256"] = "UNSIGNED-PAYLOAD"
        reply = requests.post(url, data=body, headers=headers, timeout=10)
        assert 200 == reply.status_code

    def test_signed_unsigned_payload_marker_is_honoured(self, emulator, stream):
        """A signed X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD exempts the body, as the SDKs expect."""
        body = put_body(stream)
        url = f"{emulator.url}/v2/{emulator.project_id}/records"
        headers = {"Content-Type": "application/json", "X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"}
        signer = AKSKSigner(emulator.ak, emulator.sk)
        headers.update(signer.sign("POST", url, headers, b"something else entirely"))
        reply = requests.post(url, data=body, headers=headers, timeout=10)
        assert 200 == reply.status_code


class TestChunkedBodies:
    def head(self, emu: DISEmulator) -> bytes:
        return (
            f"POST /v2/{emu.project_id}/records HTTP/1.1\r\nHost: x\r\n"
            f"X-Auth-Token: {emu.issue_token()}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()

    @pytest.mark.parametrize(
        "chunks",
        [
            b"-1\r\n" + b"x" * 65536,
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\r\nhel",
            b"123456789\r\n",
        ],
    )
    def test_invalid_chunks_get_400(self, emulator, stream, chunks):
        """Signed, prefixed, truncated or overlong chunk sizes and missing CRLFs get a 400."""
        assert 400 == raw_exchange(emulator, self.head(emulator), chunks)
        assert [] == emulator.records(stream)

    def test_declared_chunks_past_the_cap_get_413_before_reading(self, emulator, stream):
        """A chunk that would take the body past 12 MB is refused with 413 unread."""
        size = 12 * 1024 * 1024 + 1
        assert 413 == raw_exchange(emulator, self.head(emulator), f"{size:x}\r\n".encode())

    def test_valid_chunked_body_is_accepted(self, emulator, stream):
        """A well-formed chunked body with an extension and a trailer is stored."""
        body = put_body(stream)
        chunks = (
            f"{len(body[:10]):x};ext=1\r\n".encode()
            + body[:10]
            + b"\r\n"
            + f"{len(body[10:]):X}\r\n".encode()
            + body[10:]
            + b"\r\n0\r\nX-Trailer: 1\r\n\r\n"
        )
        assert (200, 1) == (
            raw_exchange(emulator, self.head(emulator), chunks),
            len(emulator.records(stream)),
        )


class TestDocumentedCodes:
    @pytest.mark.parametrize(
        ("authorization", "code"),
        [
            ("SDK-HMAC-SHA256 Access=, SignedHeaders=host, Signature=00", "DIS.4106"),
            (
                "SDK-HMAC-SHA256 Credential=AK/20240102/cn-north-4//sdk_request, "
                "SignedHeaders=host;x-sdk-date, Signature=00",
                "DIS.4108",
            ),
        ],
    )
    def test_empty_access_key_and_service(self, emulator, stream, authorization, code):
        """An empty AK is DIS.4106 and an empty service name in the scope DIS.4108."""
        body = put_body(stream)
        url, headers = signed_put(emulator, stream, body)
        date = headers["X-Sdk-Date"]
        headers["Authorization"] = authorization.replace("20240102", date[:8]).replace(
            "AK/", f"{emulator.ak}/"
        )
        reply = requests.post(url, data=body, headers=headers, timeout=10)
        assert (441, code) == (reply.status_code, error_code(reply))


class TestPartitionQuota:
    def test_default_quota_is_the_real_default_of_50(self, emulator):
        """The emulated account holds 50 partitions by default, like a real one."""
        emulator.create_stream("big", partitions=DEFAULT_PARTITION_QUOTA)
        with pytest.raises(ValueError, match="quota"):
            emulator.create_stream("one-more", partitions=1)
        assert 50 == DEFAULT_PARTITION_QUOTA

    def test_quota_refusal_over_http_is_dis_4308(self, emulator):
        """CreateStream past the quota is refused with 400 DIS.4308."""
        reply = requests.post(
            f"{emulator.url}/v2/{emulator.project_id}/streams",
            json={"stream_name": "too-big", "partition_count": 51, "stream_type": "COMMON"},
            headers={"X-Auth-Token": emulator.issue_token()},
            timeout=10,
        )
        assert (400, "DIS.4308") == (reply.status_code, error_code(reply))

    def test_quota_is_configurable(self):
        """DISEmulator(partition_quota=...) raises the quota."""
        with DISEmulator(partition_quota=200) as emu:
            emu.create_stream("big", partitions=200)
            assert ["big"] == emu.stream_names()

    def test_advanced_partitions_have_their_own_quota_of_10(self, emulator):
        """ADVANCED streams may hold 10 partitions in all by default (DIS-API.md §8), within
        the total; COMMON ones are not limited by it. Past it, 400 DIS.4308."""
        emulator.create_stream("adv-a", partitions=6, stream_type="ADVANCED")
        with pytest.raises(ValueError, match="ADVANCED partition quota exceeded: 6 in use"):
            emulator.create_stream("adv-b", partitions=5, stream_type="ADVANCED")
        emulator.create_stream("adv-c", partitions=4, stream_type="ADVANCED")
        emulator.create_stream("common", partitions=30)
        reply = requests.post(
            f"{emulator.url}/v2/{emulator.project_id}/streams",
            json={"stream_name": "adv-d", "partition_count": 1, "stream_type": "ADVANCED"},
            headers={"X-Auth-Token": emulator.issue_token()},
            timeout=10,
        )
        assert (400, "DIS.4308") == (reply.status_code, error_code(reply))
        assert ["adv-a", "adv-c", "common"] == sorted(emulator.stream_names())

    def test_advanced_quota_is_configurable(self):
        """DISEmulator(advanced_partition_quota=...) and the command's flag change it."""
        with DISEmulator(advanced_partition_quota=20) as emu:
            emu.create_stream("adv", partitions=20, stream_type="ADVANCED")
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args(["--advanced-partition-quota", "12"])
        with build(args) as emu:
            emu.create_stream("adv", partitions=12, stream_type="ADVANCED")

    def test_cli_flag_sets_the_quota(self):
        """The emulator command takes --partition-quota."""
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args(["--partition-quota", "80"])
        emu = build(args)
        with emu:
            emu.create_stream("eighty", partitions=80)
        assert 80 == args.partition_quota


class TestDeeplyNestedJSON:
    """JSON nested deeper than the parser can follow is a malformed request (400), not an
    internal error (500, which a client retries)."""

    DEEP = '{"a":' * 5000

    def test_put_records_body(self, emulator):
        reply = requests.post(
            f"{emulator.url}/v2/{emulator.project_id}/records",
            data=self.DEEP,
            headers={"X-Auth-Token": emulator.issue_token(), "Content-Type": "application/json"},
            timeout=10,
        )
        assert (400, "DIS.4200") == (reply.status_code, error_code(reply))

    def test_login_body(self, emulator):
        reply = requests.post(
            f"{emulator.url}/v3/auth/tokens",
            data=self.DEEP,
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert 400 == reply.status_code

    def test_cursor(self, emulator):
        cursor = base64.b64encode(b"[" * 3000).decode()
        reply = requests.get(
            f"{emulator.url}/v2/{emulator.project_id}/records",
            params={"partition-cursor": cursor},
            headers={"X-Auth-Token": emulator.issue_token()},
            timeout=10,
        )
        assert (400, "DIS.4217") == (reply.status_code, error_code(reply))


class TestVerboseLog:
    @pytest.mark.parametrize(
        "line",
        [b"GET /\x1b[2J\x1b]0;pwned\x07/x HTTP/1.1", b"GET /a\rforged b HTTP/1.1", b"\x1b[31mBAD"],
    )
    def test_a_request_line_cannot_act_on_the_terminal(self, capsys, line):
        """The verbose request log quotes the client's request line with control characters
        escaped: ESC, BEL and CR reached stderr raw (a cleared screen, a retitled terminal, a
        forged line), as the override of http.server's log_message skipped its escaping."""
        with DISEmulator(verbose=True) as emu:
            raw_exchange(emu, line + b"\r\nHost: x\r\n\r\n")
        err = capsys.readouterr().err
        logged = [row for row in err.splitlines() if row.startswith("dis-emulator: 127.0.0.1")]
        assert 1 == len(logged), err
        assert (True, "") == (logged[0].isprintable(), re.sub(r"[ -~]", "", err.replace("\n", "")))
