"""Tests of the emulator's AK/SK verification: known-answer vectors and failure modes over HTTP.

Requests are signed by the official SDKs' own signers (huaweicloudsdkcore for the v3 form, the DIS
SDK's ``disauth`` for the legacy forms), so the verifier is judged against independent code.
"""

from __future__ import annotations

import calendar
import json
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlsplit

import pytest
import requests
from dis_sdk_python.com.huaweicloud.dis.sdk.python.models import disauth, disrequest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from dis_logging.emulator import DISEmulator
from dis_logging.emulator import auth as verifier
from dis_logging.emulator import protobuf as pb

AK = "EXAMPLEAK0000000001"
SK = "EXAMPLEsecretKEY000000000000000000000001"
PID = "0123456789abcdef0123456789abcdef"
HOST = "dis.cn-north-4.myhuaweicloud.com"
DATE = "20240102T030405Z"
BODY = b'{"stream_name":"demo-stream","records":[{"data":"aGVsbG8=","partition_key":"k1"}]}'
JSON_HEADERS = [
    ("content-type", "application/json"),
    ("host", HOST),
    ("x-project-id", PID),
    ("x-sdk-date", DATE),
]
SCOPE = ["20240102", "cn-north-4", "dis", "sdk_request"]


def sdk_date(offset: float = 0.0) -> str:
    return time.strftime(verifier.SDK_DATE_FORMAT, time.gmtime(time.time() + offset))


def code_of(reply: requests.Response) -> Optional[str]:
    code = json.loads(reply.content).get("error_code")
    return None if code is None else str(code)


class TestKnownAnswers:
    def test_v3_canonical_request(self):
        """The server rebuilds the section 10 canonical request exactly."""
        text = verifier.canonical_request(
            "POST",
            verifier.canonical_uri(f"/v2/{PID}/records"),
            "",
            JSON_HEADERS,
            verifier.sha256_hex(BODY),
        )
        assert (
            "POST\n"
            f"/v2/{PID}/records/\n"
            "\n"
            "content-type:application/json\n"
            f"host:{HOST}\n"
            f"x-project-id:{PID}\n"
            f"x-sdk-date:{DATE}\n"
            "\n"
            "content-type;host;x-project-id;x-sdk-date\n"
            "32c987734b682cbce859cf68d741889f30ae01ac120019e8618db518c852d664"
        ) == text

    @pytest.mark.parametrize(
        ("method", "path", "query", "headers", "body", "signature"),
        [
            (
                "POST",
                f"/v2/{PID}/records",
                "",
                JSON_HEADERS,
                BODY,
                "2967f08f2e421a785d314d1656babb4873f6bd4ddc778e5a193f76c34b3064e7",
            ),
            (
                "GET",
                f"/v2/{PID}/cursors",
                "stream-name=demo-stream&partition-id=shardId-0000000000"
                "&cursor-type=AT_SEQUENCE_NUMBER&starting-sequence-number=0",
                JSON_HEADERS,
                b"",
                "fddb15f04d8b82f600c13ade33fe8cffa86dbeb0829904e069c5d31d88b5ac5d",
            ),
            (
                "GET",
                f"/v2/{PID}/records",
                "partition-cursor=ab%2Bc%2Fd%3D%3D&max_fetch_bytes=1024",
                JSON_HEADERS,
                b"",
                "d1bb1f2bc46f0a487c71088ab91fc3dbb204b0f177f3572ce840fb2d917f9e43",
            ),
            (
                "GET",
                f"/v2/{PID}/streams",
                "limit=10",
                [("host", "127.0.0.1:8080"), ("x-sdk-date", DATE)],
                b"",
                "1581b8705084c95c258c6f54cf3c6ad8f7be01256c2ff9c409f04802636e5a7c",
            ),
        ],
    )
    def test_v3_signatures(self, method, path, query, headers, body, signature):
        """The server's v3 canonicalization reproduces the section 10 signatures."""
        canonical = verifier.canonical_request(
            method,
            verifier.canonical_uri(path),
            verifier.canonical_query(verifier.query_pairs(query)),
            headers,
            verifier.sha256_hex(body),
        )
        assert signature == verifier.v3_signature(SK, DATE, canonical)

    def test_canonical_query_encoding(self):
        """Query names and values are decoded, sorted and re-encoded as section 10 step 4 says."""
        pairs = verifier.query_pairs("partition-cursor=ab%2Bc%2Fd%3D%3D&max_fetch_bytes=1024&e=")
        assert (
            "e=&max_fetch_bytes=1024&partition-cursor=ab%2Bc%2Fd%3D%3D"
            == verifier.canonical_query(pairs)
        )

    def test_derived_secret(self):
        """The V11 derived secret matches the section 11 vector."""
        assert (
            "5122cb1a3cb28fb98d582804ff258eb2accfe63be98e32629ab27f10aaea7ccf"
            == verifier.derived_secret(AK, SK, "20240102/cn-north-4/dis")
        )

    @pytest.mark.parametrize(
        ("algorithm", "signature"),
        [
            ("SDK-HMAC-SHA256", "549fd4dd3262d9f95b13a126e6d8d7fada2188cfdc1853f79a5251afe729247d"),
            ("V11-HMAC-SHA256", "673997c2fbbefa0038a436c689adcf39832ea1ed6b6b1d96ae80e93b709e8f88"),
        ],
    )
    def test_legacy_signatures(self, algorithm, signature):
        """The legacy plain and derived forms reproduce the section 11 signatures."""
        canonical = verifier.canonical_request(
            "POST",
            verifier.legacy_canonical_uri(f"/v2/{PID}/records/"),
            "",
            [("host", HOST), ("x-sdk-date", DATE)],
            verifier.sha256_hex(BODY),
        )
        secret = SK
        if algorithm == "V11-HMAC-SHA256":
            secret = verifier.derived_secret(AK, SK, "20240102/cn-north-4/dis")
        assert signature == verifier.legacy_signature(algorithm, secret, DATE, SCOPE, canonical)

    @pytest.mark.parametrize(
        ("path", "expected"),
        [("/v2//p/./records", "/v2/p/records/"), ("/", "/"), ("/a b/x/../c", "/a%20b/c/")],
    )
    def test_legacy_canonical_uri(self, path, expected):
        """The legacy URI drops empty and dot segments and ends with a slash."""
        assert expected == verifier.legacy_canonical_uri(path)

    def test_legacy_query_writes_empty_values_as_names(self):
        """The legacy canonical query writes a parameter with an empty value as its bare name."""
        assert "a&b=1" == verifier.legacy_canonical_query([("b", "1"), ("a", "")])

    @pytest.mark.parametrize(
        ("authorization", "host"),
        [
            (
                f"SDK-HMAC-SHA256 Credential={AK}/{'/'.join(SCOPE)}, "
                "SignedHeaders=host;x-sdk-date, "
                "Signature=549fd4dd3262d9f95b13a126e6d8d7fada2188cfdc1853f79a5251afe729247d",
                HOST,
            ),
            (
                f"V11-HMAC-SHA256 Credential={AK}/{'/'.join(SCOPE)}, "
                "SignedHeaders=host;x-sdk-date, "
                "Signature=673997c2fbbefa0038a436c689adcf39832ea1ed6b6b1d96ae80e93b709e8f88",
                HOST + ":443",
            ),
        ],
    )
    def test_verifier_accepts_the_legacy_vectors(self, authorization, host):
        """The verifier accepts the section 11 requests, also with a port in the wire Host."""
        clock = float(calendar.timegm(time.strptime(DATE, verifier.SDK_DATE_FORMAT)))
        check = verifier.SignatureVerifier({AK: SK}, "cn-north-4", clock=lambda: clock)
        request = verifier.SignedRequest(
            "POST",
            f"/v2/{PID}/records/",
            "",
            {"host": host, "x-sdk-date": DATE, "authorization": authorization},
            BODY,
        )
        assert AK == check.verify(request)

    def test_verifier_accepts_the_v3_vector(self):
        """The verifier accepts the section 10 worked example at its signing time."""
        clock = float(calendar.timegm(time.strptime(DATE, verifier.SDK_DATE_FORMAT)))
        check = verifier.SignatureVerifier({AK: SK}, "cn-north-4", clock=lambda: clock + 600)
        headers = dict(JSON_HEADERS)
        headers["authorization"] = (
            f"SDK-HMAC-SHA256 Access={AK}, "
            "SignedHeaders=content-type;host;x-project-id;x-sdk-date, "
            "Signature=2967f08f2e421a785d314d1656babb4873f6bd4ddc778e5a193f76c34b3064e7"
        )
        assert AK == check.verify(
            verifier.SignedRequest("POST", f"/v2/{PID}/records", "", headers, BODY)
        )


def v3_signed(
    method: str,
    url: str,
    *,
    ak: str = AK,
    sk: str = SK,
    body: bytes = b"",
    query: Optional[List[Tuple[str, str]]] = None,
    headers: Optional[Dict[str, str]] = None,
    host: Optional[str] = None,
) -> Tuple[str, Dict[str, str]]:
    """Sign a request with huaweicloudsdkcore's signer; return the URL to call and its headers."""
    split = urlsplit(url)
    request = SdkRequest(
        method=method,
        schema=split.scheme,
        host=host or split.netloc,
        resource_path=split.path,
        query_params=list(query or []),
        header_params={"Content-Type": "application/json", **(headers or {})},
        body=body,
    )
    Signer(BasicCredentials(ak, sk)).sign(request)
    return f"{split.scheme}://{split.netloc}{request.uri}", dict(request.header_params)


def legacy_signed(
    emu: DISEmulator,
    method: str,
    path: str,
    *,
    derived: bool,
    region: Optional[str] = None,
    query: Optional[Dict[str, str]] = None,
    body: str = "",
) -> Tuple[str, Dict[str, str]]:
    """Sign a request with the legacy DIS SDK's signer; return the URL (with query) and headers."""
    host = emu.url.split("//")[1]
    request = disrequest.disRequest(
        method, host, path, query=dict(query or {}), headers={}, body=body
    )
    signer = disauth.Signer(emu.ak, emu.sk, region or emu.region)
    if derived:
        signer.SignWithDerivationKey(request)
    else:
        signer.Sign(request)
    prepared = requests.Request(method, emu.url + path, params=query).prepare()
    return str(prepared.url), dict(request.headers)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


class TestV3OverHTTP:
    def test_signed_get(self, emulator, stream, session):
        """A v3-signed GET is accepted and logged as AK/SK."""
        url, headers = v3_signed("GET", f"{emulator.url}/v2/{emulator.project_id}/streams")
        reply = session.get(url, headers=headers)
        assert (200, "aksk") == (reply.status_code, emulator.requests[-1].auth)

    def test_signed_put_with_body(self, emulator, stream, session):
        """A v3-signed PutRecords with a JSON body is accepted."""
        body = json.dumps({"stream_name": stream, "records": [{"data": "eA=="}]}).encode()
        url, headers = v3_signed(
            "POST", f"{emulator.url}/v2/{emulator.project_id}/records", body=body
        )
        assert 200 == session.post(url, data=body, headers=headers).status_code

    def test_signed_query_with_reserved_characters(self, emulator, stream, session):
        """A signed query whose value needs percent-encoding (a cursor) is accepted."""
        query = [("partition-cursor", "ab+c/d=="), ("max_fetch_bytes", "1024")]
        url, headers = v3_signed(
            "GET", f"{emulator.url}/v2/{emulator.project_id}/records", query=query
        )
        reply = session.get(url, headers=headers)
        assert (400, "DIS.4217") == (reply.status_code, code_of(reply))

    def test_unsigned_payload_for_protobuf(self, emulator, stream, session):
        """A protobuf body is signed as UNSIGNED-PAYLOAD and accepted."""
        body = pb.encode_put_records_request(stream, [pb.PutEntry(b"x")])
        headers = {"Content-Type": "application/x-protobuf;charset=utf-8"}
        url, signed = v3_signed(
            "POST", f"{emulator.url}/v2/{emulator.project_id}/records", body=body, headers=headers
        )
        reply = session.post(url, data=body, headers=signed)
        assert ("UNSIGNED-PAYLOAD", 200) == (signed["X-Sdk-Content-Sha256"], reply.status_code)

    def test_host_signed_without_port(self, emulator, stream, session):
        """A signature over the host without its port is accepted although the wire Host has one."""
        url, headers = v3_signed(
            "GET", f"{emulator.url}/v2/{emulator.project_id}/streams", host="127.0.0.1"
        )
        headers.pop("Host")
        assert 200 == session.get(url, headers=headers).status_code

    def test_security_token_is_accepted(self, emulator, stream, session):
        """An X-Security-Token header is accepted when the emulator requires none."""
        url, headers = v3_signed(
            "GET",
            f"{emulator.url}/v2/{emulator.project_id}/streams",
            headers={"X-Security-Token": "tmp"},
        )
        assert 200 == session.get(url, headers=headers).status_code

    @pytest.mark.parametrize(
        ("token", "status"), [("right-token", 200), ("wrong-token", 441), (None, 441)]
    )
    def test_required_security_token(self, session, token, status):
        """When configured, the security token must be sent and must match (else DIS.4112)."""
        extra = {"X-Security-Token": token} if token else {}
        with DISEmulator(security_token="right-token") as emu:
            url, headers = v3_signed("GET", f"{emu.url}/v2/{emu.project_id}/streams", headers=extra)
            reply = session.get(url, headers=headers)
        assert (status, None if status == 200 else "DIS.4112") == (
            reply.status_code,
            code_of(reply) if reply.content else None,
        )

    def test_date_within_skew_is_accepted(self, emulator, stream, session):
        """An X-Sdk-Date ten minutes old is still accepted."""
        url, headers = v3_signed(
            "GET",
            f"{emulator.url}/v2/{emulator.project_id}/streams",
            headers={"X-Sdk-Date": sdk_date(-600)},
        )
        assert 200 == session.get(url, headers=headers).status_code

    def test_wrong_project_with_valid_signature_is_4117(self, emulator, session):
        """A correctly signed request for another project is rejected with DIS.4117."""
        url, headers = v3_signed("GET", f"{emulator.url}/v2/{'f' * 32}/streams")
        reply = session.get(url, headers=headers)
        assert (400, "DIS.4117") == (reply.status_code, code_of(reply))


class TestAuthFailures:
    def send(
        self,
        emulator: DISEmulator,
        session: requests.Session,
        *,
        drop: Tuple[str, ...] = (),
        replace: Optional[Dict[str, str]] = None,
        **sign: Any,
    ) -> requests.Response:
        url, headers = v3_signed("GET", f"{emulator.url}/v2/{emulator.project_id}/streams", **sign)
        for name in drop:
            headers.pop(name)
        headers.update(replace or {})
        return session.get(url, headers=headers)

    @pytest.mark.parametrize(
        ("case", "expected"),
        [
            ({"drop": ("Authorization",)}, "DIS.4101"),
            ({"replace": {"Authorization": "Basic dXNlcjpwYXNz"}}, "DIS.4101"),
            ({"replace": {"Authorization": "SDK-HMAC-SHA256 garbage"}}, "DIS.4101"),
            ({"replace": {"Authorization": "SDK-HMAC-SHA256 Access=x"}}, "DIS.4101"),
            ({"drop": ("X-Sdk-Date",)}, "DIS.4103"),
            ({"replace": {"X-Sdk-Date": "2024-01-02 03:04:05"}}, "DIS.4103"),
            ({"headers": {"X-Sdk-Date": sdk_date(-20 * 60)}}, "DIS.4103"),
            ({"headers": {"X-Sdk-Date": sdk_date(20 * 60)}}, "DIS.4103"),
            ({"ak": "UNKNOWNAK"}, "DIS.4107"),
            ({"sk": "wrong-secret"}, "DIS.4112"),
            ({"replace": {"X-Project-Id": "f" * 32}, "headers": {"X-Project-Id": PID}}, "DIS.4112"),
            ({"headers": {"X-Extra": "1"}, "drop": ("X-Extra",)}, "DIS.4112"),
        ],
    )
    def test_failure_modes(self, emulator, stream, session, case, expected):
        """Each AK/SK problem is rejected with HTTP 441 and its own DIS.41xx code."""
        reply = self.send(emulator, session, **case)
        assert (441, expected) == (reply.status_code, code_of(reply))

    def test_tampered_body_is_4106(self, emulator, stream, session):
        """A body changed after signing is rejected with DIS.4112."""
        body = json.dumps({"stream_name": stream, "records": [{"data": "eA=="}]}).encode()
        url, headers = v3_signed(
            "POST", f"{emulator.url}/v2/{emulator.project_id}/records", body=body
        )
        reply = session.post(url, data=body.replace(b"eA==", b"eQ=="), headers=headers)
        assert (441, "DIS.4112", []) == (
            reply.status_code,
            code_of(reply),
            emulator.records(stream),
        )

    def test_tampered_query_is_4106(self, emulator, stream, session):
        """A query changed after signing is rejected with DIS.4112."""
        url, headers = v3_signed(
            "GET", f"{emulator.url}/v2/{emulator.project_id}/streams", query=[("limit", "10")]
        )
        reply = session.get(url.replace("limit=10", "limit=11"), headers=headers)
        assert (441, "DIS.4112") == (reply.status_code, code_of(reply))

    def test_failures_never_echo_secrets(self, emulator, stream, session):
        """Auth error bodies and the request log never contain the SK or the signature."""
        url, headers = v3_signed(
            "GET", f"{emulator.url}/v2/{emulator.project_id}/streams", sk="wrong-secret"
        )
        reply = session.get(url, headers=headers)
        signature = headers["Authorization"].rsplit("=", 1)[1]
        text = reply.text + repr(emulator.requests)
        assert (False, False, False) == (
            emulator.sk in text,
            "wrong-secret" in text,
            signature in text,
        )


class TestLegacyOverHTTP:
    @pytest.mark.parametrize("derived", [True, False])
    def test_legacy_put(self, emulator, stream, session, derived):
        """Requests signed by the legacy DIS SDK's signer (plain and derived) are accepted."""
        body = json.dumps({"stream_name": stream, "stream_id": "", "records": [{"data": "eA=="}]})
        url, headers = legacy_signed(
            emulator, "POST", f"/v2/{emulator.project_id}/records/", derived=derived, body=body
        )
        headers["Content-Type"] = "application/json; charset=UTF-8"
        reply = session.post(url, data=body, headers=headers)
        assert (200, [b"x"]) == (reply.status_code, [r.data for r in emulator.records(stream)])

    @pytest.mark.parametrize("derived", [True, False])
    def test_legacy_get_with_query(self, emulator, stream, session, derived):
        """Legacy-signed GETs with query parameters are accepted."""
        query = {"limit": "10", "start_stream_name": ""}
        url, headers = legacy_signed(
            emulator, "GET", f"/v2/{emulator.project_id}/streams/", derived=derived, query=query
        )
        assert 200 == session.get(url, headers=headers).status_code

    @pytest.mark.parametrize("derived", [True, False])
    def test_legacy_wrong_region_is_4105(self, emulator, stream, session, derived):
        """A legacy scope naming another region is rejected with DIS.4111."""
        url, headers = legacy_signed(
            emulator,
            "GET",
            f"/v2/{emulator.project_id}/streams/",
            derived=derived,
            region="eu-west-0",
        )
        reply = session.get(url, headers=headers)
        assert (441, "DIS.4111") == (reply.status_code, code_of(reply))
