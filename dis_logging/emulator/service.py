"""Execution of IAM and DIS requests against the in-memory state: routing, auth, faults, replies.

:class:`Service` knows nothing about sockets: the HTTP layer in ``server`` parses a
:class:`Request`, calls :meth:`Service.handle` and writes the :class:`Reply` it gets back.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hmac
import json
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Final, List, Mapping, Optional, Tuple
from urllib.parse import unquote

from dis_logging.emulator import protobuf
from dis_logging.emulator.auth import (
    TOKEN_MISSING,
    SignatureVerifier,
    SignedRequest,
    TemporaryKeyStore,
    TokenStore,
    auth_error,
)
from dis_logging.emulator.faults import FaultPlan
from dis_logging.emulator.state import (
    DEFAULT_ADVANCED_PARTITION_QUOTA,
    DEFAULT_PARTITION_QUOTA,
    MAX_REQUEST_DATA_BYTES,
    NewRecord,
    RequestLogEntry,
    ServiceError,
    Stream,
    StreamStore,
    bad_request,
    parse_decimal,
    parse_partition_id,
)

CURSOR_TTL: Final = 300.0
"""Partition cursors are valid 5 minutes, in seconds (DIS-API.md §5, §8)."""

#: GetRecords ``limit``: default 1000, range 1-10000 (DIS-API.md §5).
DEFAULT_GET_LIMIT: Final = 1000
MAX_GET_LIMIT: Final = 10000
#: ListStreams ``limit``: default 10, up to 100; newer docs allow 500, so we accept that
#: (DIS-API.md §5, §8).
DEFAULT_LIST_LIMIT: Final = 10
MAX_LIST_LIMIT: Final = 500
#: DescribeStream ``limit_partitions``: default 100, range 1-1000 (DIS-API.md §5, §8).
DEFAULT_DESCRIBE_LIMIT: Final = 100
MAX_DESCRIBE_LIMIT: Final = 1000
#: CreateStream ``data_duration`` when the body has none, hours (DIS-API.md §5).
DEFAULT_RETENTION_HOURS: Final = 24
REQUEST_LOG_SIZE: Final = 100_000
"""Request log entries kept; older ones are discarded so long benchmarks stay bounded."""
#: Path of the ECS/CCE metadata service's temporary credentials (DIS-API.md §13).
METADATA_SECURITY_KEY_PATH: Final = "/openstack/latest/securitykey"
#: Operation name of that route in the request log and for fault scripting.
METADATA_OPERATION: Final = "MetadataSecurityKey"
#: IAM's KeystoneListProjects, ``GET /v3/projects``: the v3 SDK asks it for the project id of its
#: region when ``BasicCredentials`` has none (huaweicloudsdkcore ``IamHelper``; IAM API reference,
#: "Querying Project Information", support.huaweicloud.com/api-iam/iam_06_0001.html).
LIST_PROJECTS_OPERATION: Final = "ListProjects"
#: Operations that need no DIS project in the path.
_IAM_OPERATIONS: Final = frozenset({"CreateToken", METADATA_OPERATION, LIST_PROJECTS_OPERATION})

#: GetCursor ``cursor-type`` values (DIS-API.md §5).
CURSOR_TYPES: Final = (
    "AT_SEQUENCE_NUMBER",
    "AFTER_SEQUENCE_NUMBER",
    "TRIM_HORIZON",
    "LATEST",
    "AT_TIMESTAMP",
)

#: Content types of JSON and protobuf replies (DIS-API.md §3, §6).
JSON_TYPE: Final = "application/json;charset=UTF-8"
PROTOBUF_TYPE: Final = "application/x-protobuf;charset=utf-8"
_EMPTY: Final = b""


@dataclass
class Reply:
    """An HTTP reply plus the facts the request log records about it.

    Attributes:
        status: The HTTP status.
        body: The body bytes; default empty.
        content_type: The ``Content-Type`` header; default None, sent only with a body.
        headers: Further headers, such as ``Retry-After`` or ``X-Subject-Token``; default none.
        error_code: The error code of an error reply, for the log; default None.
        record_count: Records returned (GetRecords), for the log; default 0.
        data_bytes: Record data bytes returned, for the log; default 0.
    """

    status: int
    body: bytes = _EMPTY
    content_type: Optional[str] = None
    headers: Dict[str, str] = field(default_factory=dict)
    error_code: Optional[str] = None
    record_count: int = 0
    data_bytes: int = 0


def json_reply(status: int, payload: object, record_count: int = 0, data_bytes: int = 0) -> Reply:
    """Return a JSON reply.

    Args:
        status: The HTTP status.
        payload: Anything :func:`json.dumps` accepts; encoded compactly as UTF-8.
        record_count: Records in the reply, for the request log only; default 0.
        data_bytes: Record data bytes in the reply, for the request log only; default 0.

    Returns:
        The reply with a JSON content type.
    """
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return Reply(status, body, JSON_TYPE, record_count=record_count, data_bytes=data_bytes)


def error_reply(error: ServiceError, iam: bool = False) -> Reply:
    """Return the reply for a rejected request in the DIS error shape.

    Args:
        error: The rejection; its ``retry_after``, when set, becomes a ``Retry-After`` header
            (whole seconds without a fraction).
        iam: Also add IAM's nested ``error`` object; default False (DIS only).

    Returns:
        The reply, with ``error_code`` set for the request log.
    """
    payload: Dict[str, object] = {"error_code": error.code, "error_msg": error.message}
    if iam:
        title = "Unauthorized" if error.status == 401 else "Error"
        payload["error"] = {"code": error.status, "message": error.message, "title": title}
    reply = json_reply(error.status, payload)
    reply.error_code = error.code
    if error.retry_after is not None:
        seconds = float(error.retry_after)
        # Whole seconds as HTTP writes them; a fraction (for quick tests) in plain decimals,
        # never in exponent form ("1e+06"), which no HTTP client reads as a number of seconds.
        reply.headers["Retry-After"] = (
            str(int(seconds)) if seconds.is_integer() else f"{seconds:.3f}".rstrip("0").rstrip(".")
        )
    return reply


@dataclass
class Request:
    """A parsed HTTP request as the operations see it.

    Attributes:
        method: The HTTP method.
        path: The percent-decoded path, without the query.
        raw_path: The path as received, for signature checks and routing.
        raw_query: The query string as received, without ``?``.
        query: Decoded query parameters; the first value of a repeated name wins.
        headers: Header names lower-cased to values.
        body: The body bytes.
        auth: How the request authenticated: ``"token"``, ``"aksk"`` or ``"none"`` (default).
        record_count: Records in a PutRecords request, for the log; default 0.
        data_bytes: Their data bytes, for the log; default 0.
        put: The decoded PutRecords body ``(stream name, stream id, records)``, once decoded;
            default None.
    """

    method: str
    path: str
    raw_path: str
    raw_query: str
    query: Dict[str, str]
    headers: Dict[str, str]
    body: bytes
    auth: str = "none"
    record_count: int = 0
    data_bytes: int = 0
    put: Optional[Tuple[str, str, List[NewRecord]]] = None

    @property
    def is_protobuf(self) -> bool:
        """True when the request selected the protobuf variant."""
        return self.headers.get("content-type", "").lower().startswith("application/x-protobuf")


def _json_body(request: Request) -> Dict[str, Any]:
    """Decode the body as a JSON object, or raise DIS.4200."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise bad_request("DIS.4200", "Content-Type must be application/json.")
    try:
        payload = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # nested too deep: not a request
        raise bad_request("DIS.4200", "The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise bad_request("DIS.4200", "The request body must be a JSON object.")
    return payload


def _optional_str(record: Mapping[str, Any], name: str, where: str) -> Optional[str]:
    """Return ``record[name]`` as an optional string (an int ``explicit_hash_key`` is accepted)."""
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and name == "explicit_hash_key":
        return str(value)
    if not isinstance(value, str):
        raise bad_request("DIS.4200", f"{where}.{name} must be a string.")
    return value


def _utf8_text(text: Optional[str]) -> Optional[str]:
    """Return ``text`` as the service keeps it: lone surrogates (a JSON ``"\\ud800"``) become
    ``"?"``, as a Java service's UTF-8 encoding of the string makes them (and as the partition
    hash already reads them), so both reply encodings can carry the key."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _int_param(
    query: Mapping[str, str], name: str, default: int, low: int, high: int, code: str = "DIS.4200"
) -> int:
    """Return query parameter ``name`` as an int in ``[low, high]``, ``default`` when absent."""
    text = query.get(name)
    if text is None or text == "":
        return default
    value = parse_decimal(text)  # no sign, no "_", ASCII digits: every range here starts at 0
    if value is None:
        raise bad_request(code, f"{name} must be an integer within [{low}, {high}].")
    if not low <= value <= high:
        raise bad_request(code, f"{name} must be within [{low}, {high}].")
    return value


@dataclass(frozen=True)
class Account:
    """The emulated account's identity and credentials (secrets stay out of the repr).

    Attributes:
        project_id: The only project id DIS paths may use.
        ak: The accepted access key.
        sk: Its secret key.
        username: The IAM user name.
        password: Its password.
        domain_name: The IAM account (domain) name.
        region: The region id, also the IAM project name.
    """

    project_id: str
    ak: str
    sk: str = field(repr=False)
    username: str
    password: str = field(repr=False)
    domain_name: str
    region: str

    @property
    def user_id(self) -> str:
        """A stable IAM user id derived from the user name."""
        return "u" + uuid.uuid5(uuid.NAMESPACE_OID, self.username).hex[:31]

    @property
    def domain_id(self) -> str:
        """A stable IAM account id derived from the account name."""
        return "d" + uuid.uuid5(uuid.NAMESPACE_OID, self.domain_name).hex[:31]


class Service:
    """The emulated IAM and DIS services; thread-safe, called from the connection threads.

    Args:
        account: Identity and credentials of the emulated account.
        token_ttl: Lifetime of issued tokens in seconds; no default.
        url: Returns the base URL, for the IAM catalog.
        security_token: When set, AK/SK requests must carry it; default None accepts any or none.
        clock: Wall clock in seconds since the epoch; default :func:`time.time`.
        seed: Seed for placing records without key or partition id; default None is random.
        partition_quota: Total partitions the account may hold; default
            :data:`~dis_logging.emulator.state.DEFAULT_PARTITION_QUOTA` (50).
        advanced_partition_quota: Partitions of ADVANCED streams the account may hold; default
            :data:`~dis_logging.emulator.state.DEFAULT_ADVANCED_PARTITION_QUOTA` (10).
        verbose: When True, unexpected errors print a traceback to stderr; default False.

    Attributes:
        store: The streams and records.
        tokens: The issued IAM tokens.
        verifier: The AK/SK signature checker.
        faults: The scripted faults.
        stopping: Set while the emulator stops, to cut scripted delays short.
    """

    def __init__(
        self,
        account: Account,
        *,
        token_ttl: float,
        url: Callable[[], str],
        security_token: Optional[str] = None,
        clock: Callable[[], float] = time.time,
        seed: Optional[int] = None,
        partition_quota: int = DEFAULT_PARTITION_QUOTA,
        advanced_partition_quota: int = DEFAULT_ADVANCED_PARTITION_QUOTA,
        verbose: bool = False,
    ) -> None:
        self.account = account
        self.token_ttl = token_ttl
        self.url = url
        self.clock = clock
        self.verbose = verbose
        self.store = StreamStore(
            clock=clock,
            partition_quota=partition_quota,
            seed=seed,
            advanced_partition_quota=advanced_partition_quota,
        )
        self.tokens = TokenStore(clock=clock)
        self.temporary = TemporaryKeyStore(clock=clock)
        self.verifier = SignatureVerifier(
            {account.ak: account.sk}, account.region, clock, security_token, self.temporary
        )
        self.faults = FaultPlan()
        self.stopping = threading.Event()
        self._log: Deque[RequestLogEntry] = deque(maxlen=REQUEST_LOG_SIZE)
        self._log_lock = threading.Lock()

    def record(self, entry: RequestLogEntry) -> None:
        """Append ``entry`` to the request log, dropping the oldest beyond :data:`REQUEST_LOG_SIZE`.

        Args:
            entry: The request to log.
        """
        with self._log_lock:
            self._log.append(entry)

    def logged(self) -> List[RequestLogEntry]:
        """Return a copy of the request log, oldest first.

        Returns:
            A new list of at most :data:`REQUEST_LOG_SIZE` entries.
        """
        with self._log_lock:
            return list(self._log)

    def clear_log(self) -> None:
        """Empty the request log."""
        with self._log_lock:
            self._log.clear()

    def _authenticate(self, request: Request) -> None:
        """Check the token or AK/SK signature; an ``Authorization`` header means AK/SK."""
        headers = request.headers
        if "authorization" in headers or (
            "x-auth-token" not in headers and "x-sdk-date" in headers
        ):
            request.auth = "aksk"
            signed = SignedRequest(
                request.method, request.raw_path, request.raw_query, headers, request.body
            )
            self.verifier.verify(signed)
        elif "x-auth-token" in headers:
            request.auth = "token"
            self.tokens.check(headers["x-auth-token"].strip(), self.account.project_id)
        else:
            raise auth_error(
                TOKEN_MISSING, "Authentication required: send X-Auth-Token or an AK/SK signature."
            )

    def _list_projects(self, request: Request) -> Reply:
        """IAM's KeystoneListProjects: the account's one project, filtered like IAM filters.

        Authenticated like a DIS call (a token of any scope, or an AK/SK signature); a refusal
        is IAM's 401, not DIS's 441.
        """
        try:
            if "authorization" in request.headers or "x-auth-token" not in request.headers:
                self._authenticate(request)
            else:
                request.auth = "token"
                self.tokens.check(request.headers["x-auth-token"].strip(), None)
        except ServiceError as exc:
            raise ServiceError(401, "APIG.0301", exc.message) from None
        account = self.account
        project: Dict[str, object] = {
            "id": account.project_id,
            "name": account.region,
            "domain_id": account.domain_id,
            "parent_id": account.domain_id,
            "description": "",
            "enabled": True,
            "is_domain": False,
            "links": {"self": f"{self.url()}/v3/projects/{account.project_id}"},
        }
        wanted = {
            k: request.query[k]
            for k in ("name", "domain_id", "parent_id", "id")
            if k in request.query
        }
        enabled = request.query.get("enabled", "").lower()
        matches = all(project[k] == v for k, v in wanted.items()) and enabled in ("", "true")
        links = {"self": f"{self.url()}/v3/projects", "previous": None, "next": None}
        return json_reply(200, {"projects": [project] if matches else [], "links": links})

    def _check_project(self, request: Request, project: str) -> None:
        """Reject with DIS.4117 unless the path and any ``X-Project-Id`` name our project."""
        header = request.headers.get("x-project-id")
        if project != self.account.project_id or (
            header is not None and header != self.account.project_id
        ):
            raise bad_request("DIS.4117", "Invalid project id.")

    def _create_token(self, request: Request) -> Reply:
        try:
            payload = json.loads(request.body.decode("utf-8"))
            auth = payload["auth"]
            identity = auth["identity"]
            methods = identity["methods"]
            user = identity["password"]["user"]
            name, password = user.get("name"), user["password"]
            domain = user.get("domain") or {}
            scope = auth.get("scope") or {}
        except (
            UnicodeDecodeError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            RecursionError,
        ):
            raise ServiceError(
                400, "IAM.0011", "Request body is invalid: expected a password auth body."
            ) from None
        if not isinstance(methods, list) or "password" not in methods:
            raise ServiceError(400, "IAM.0011", "Only the password method is supported.")
        if not isinstance(password, str) or not isinstance(domain, dict):
            raise ServiceError(400, "IAM.0011", "Request body is invalid.")
        matches = (
            name in (self.account.username, None)
            and (name is not None or user.get("id") == self.account.user_id)
            # surrogatepass: a lone surrogate ("\ud800" in the JSON) is a wrong password, not a 500
            and hmac.compare_digest(
                password.encode("utf-8", "surrogatepass"),
                self.account.password.encode("utf-8", "surrogatepass"),
            )
            and (
                domain.get("name") == self.account.domain_name
                or domain.get("id") == self.account.domain_id
            )
        )
        if not matches:
            raise ServiceError(
                401, "IAM.0002", "The username or password is wrong, or the account is unknown."
            )
        project_id: Optional[str] = None
        project = scope.get("project") if isinstance(scope, dict) else None
        if isinstance(project, dict):
            if (
                project.get("name") != self.account.region
                and project.get("id") != self.account.project_id
            ):
                raise ServiceError(401, "IAM.0004", "The project in the scope does not exist.")
            project_id = self.account.project_id
        token, info = self.tokens.issue(self.token_ttl, project_id)
        body = self._token_body(info.issued_at, info.expires_at, project_id is not None)
        if request.query.get("nocatalog", "").lower() != "true":
            body["catalog"] = self._catalog()
        reply = json_reply(201, {"token": body})
        reply.headers["X-Subject-Token"] = token
        return reply

    def _token_body(self, issued: float, expires: float, scoped: bool) -> Dict[str, object]:
        domain = {"id": self.account.domain_id, "name": self.account.domain_name}
        body: Dict[str, object] = {
            "expires_at": _iso(expires),
            "issued_at": _iso(issued),
            "methods": ["password"],
            "user": {
                "id": self.account.user_id,
                "name": self.account.username,
                "domain": domain,
                "password_expires_at": "",
            },
            "roles": [{"id": "0", "name": "dis_adm"}, {"id": "1", "name": "op_service"}],
        }
        if scoped:
            body["project"] = {
                "id": self.account.project_id,
                "name": self.account.region,
                "domain": domain,
            }
        else:
            body["domain"] = domain
        return body

    def _catalog(self) -> List[Dict[str, object]]:
        def entry(kind: str) -> Dict[str, object]:
            return {
                "type": kind,
                "id": uuid.uuid5(uuid.NAMESPACE_URL, kind).hex,
                "name": kind,
                "endpoints": [
                    {
                        "url": self.url()
                        if kind != "dis"
                        else f"{self.url()}/v2/{self.account.project_id}",
                        "region": self.account.region,
                        "region_id": self.account.region,
                        "interface": "public",
                        "id": uuid.uuid5(uuid.NAMESPACE_URL, kind + "-ep").hex,
                    }
                ],
            }

        return [entry("identity"), entry("dis")]

    def _decode_put(self, request: Request) -> Tuple[str, str, List[NewRecord]]:
        if request.is_protobuf:
            try:
                name, stream_id, entries = protobuf.decode_put_records_request(request.body)
            except protobuf.DecodeError as exc:
                raise bad_request("DIS.4200", f"Invalid protobuf body: {exc}.") from None
            records = [
                NewRecord(e.data, e.partition_key, e.partition_id, e.explicit_hash_key)
                for e in entries
            ]
        else:
            payload = _json_body(request)
            name = payload.get("stream_name", "")
            stream_id = payload.get("stream_id") or ""
            raw_records = payload.get("records")
            if not isinstance(name, str) or not isinstance(stream_id, str):
                raise bad_request("DIS.4200", "stream_name and stream_id must be strings.")
            if not isinstance(raw_records, list):
                raise bad_request("DIS.4200", "records must be an array.")
            records = [self._decode_json_record(r, i) for i, r in enumerate(raw_records)]
        if not name and not stream_id:
            raise bad_request("DIS.4200", "stream_name is required.")
        if not records:
            raise bad_request("DIS.4200", "records must not be empty.")
        return name, stream_id, records

    @staticmethod
    def _decode_json_record(raw: object, index: int) -> NewRecord:
        where = f"records[{index}]"
        if not isinstance(raw, dict):
            raise bad_request("DIS.4200", f"{where} must be an object.")
        data = raw.get("data")
        if not isinstance(data, str):
            raise bad_request("DIS.4200", f"{where}.data must be a base64 string.")
        try:
            decoded = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("DIS.4200", f"{where}.data is not valid base64.") from None
        return NewRecord(
            decoded,
            _utf8_text(_optional_str(raw, "partition_key", where)),
            _optional_str(raw, "partition_id", where),
            _optional_str(raw, "explicit_hash_key", where),
        )

    def _put_records(self, request: Request) -> Reply:
        name, stream_id, records = request.put or self._decode_put(request)
        stream = self.store.get(name, stream_id)
        total = sum(len(r.data) for r in records)
        limit = MAX_REQUEST_DATA_BYTES[stream.stream_type]
        if total > limit:
            raise bad_request(
                "DIS.4200",
                f"The records hold {total} bytes of data; a PutRecords request to a "
                f"{stream.stream_type} stream allows at most {limit}.",
            )
        outcomes = self.store.put(stream, records, self.faults.record_filter())
        failed = sum(1 for o in outcomes if o.record is None)
        if request.is_protobuf:
            entries = [
                protobuf.ResultEntry(o.record.partition_id, o.record.sequence_number)
                if o.record is not None
                else protobuf.ResultEntry(error_code=o.error_code, error_message=o.error_message)
                for o in outcomes
            ]
            body = protobuf.encode_put_records_result(failed, entries)
            return Reply(200, body, PROTOBUF_TYPE)
        results: List[Dict[str, object]] = [
            {"partition_id": o.record.partition_id, "sequence_number": o.record.sequence_number}
            if o.record is not None
            else {"error_code": o.error_code, "error_message": o.error_message}
            for o in outcomes
        ]
        return json_reply(200, {"failed_record_count": failed, "records": results})

    def _partition_index(self, stream: Stream, text: Optional[str]) -> int:
        if not text:
            raise bad_request("DIS.4201", "partition-id is required.")
        index = parse_partition_id(text)
        if index is None:
            raise bad_request("DIS.4201", f"Invalid partition id: {text!r}.")
        if index >= len(stream.partitions):
            raise bad_request("DIS.4302", f"Partition does not exist: {text}.")
        return index

    def _get_cursor(self, request: Request) -> Reply:
        query = request.query
        if not query.get("stream-name") and not query.get("stream-id"):
            # A required parameter missing is a malformed request (as PutRecords without
            # stream_name), not a stream named "" that does not exist.
            raise bad_request("DIS.4200", "stream-name is required.")
        stream = self.store.get(query.get("stream-name", ""), query.get("stream-id"))
        index = self._partition_index(stream, query.get("partition-id"))
        cursor_type = query.get("cursor-type") or "AT_SEQUENCE_NUMBER"
        if cursor_type not in CURSOR_TYPES:
            raise bad_request("DIS.4215", f"Invalid cursor-type: {cursor_type!r}.")
        oldest, size = self.store.sequence_range(stream, index)
        if cursor_type in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            text = query.get("starting-sequence-number", "")
            number = parse_decimal(text)
            if number is None:
                raise bad_request(
                    "DIS.4216",
                    "starting-sequence-number must be a decimal sequence number in [0, 2^63-1].",
                )
            sequence = number + (cursor_type == "AFTER_SEQUENCE_NUMBER")
            if not oldest <= sequence <= size:  # expired, or not written yet
                raise bad_request(
                    "DIS.4224",
                    f"starting-sequence-number {text} is out of range [{oldest} : {size}].",
                )
            start = sequence
        elif cursor_type == "TRIM_HORIZON":
            start = oldest
        elif cursor_type == "LATEST":
            start = size
        else:
            stamp = parse_decimal(query.get("timestamp", ""))
            if stamp is None:
                raise bad_request(
                    "DIS.4200", "timestamp (ms since the epoch) is required for AT_TIMESTAMP."
                )
            start = self.store.first_at_or_after(stream, index, stamp)
        return json_reply(200, {"partition_cursor": self._make_cursor(stream, index, start)})

    def _make_cursor(self, stream: Stream, index: int, start: int) -> str:
        payload = {
            "stream": stream.name,
            "stream_id": stream.stream_id,
            "partition": index,
            "next_seq": start,
            "issued_ms": int(self.clock() * 1000),
        }
        raw = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        return base64.b64encode(raw).decode("ascii")

    def _read_cursor(self, text: str) -> Tuple[Stream, int, int]:
        try:
            payload = json.loads(base64.b64decode(text, validate=True))
            name, stream_id = payload["stream"], payload["stream_id"]
            index, start, issued = payload["partition"], payload["next_seq"], payload["issued_ms"]
            if not all(isinstance(v, str) for v in (name, stream_id)) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in (index, start, issued)
            ):
                raise TypeError("cursor fields")
        except (binascii.Error, ValueError, KeyError, TypeError, RecursionError):
            raise bad_request("DIS.4217", "Invalid partition-cursor.") from None
        if self.clock() * 1000 - issued > CURSOR_TTL * 1000:
            raise bad_request("DIS.4225", "The partition-cursor has expired; get a new cursor.")
        stream = self.store.get(name)
        if stream.stream_id != stream_id or not 0 <= index < len(stream.partitions) or start < 0:
            raise bad_request("DIS.4217", "Invalid partition-cursor.")
        return stream, index, start

    def _get_records(self, request: Request) -> Reply:
        query = request.query
        cursor = query.get("partition-cursor")
        if not cursor:
            raise bad_request("DIS.4217", "partition-cursor is required.")
        stream, index, start = self._read_cursor(cursor)
        limit = _int_param(query, "limit", DEFAULT_GET_LIMIT, 1, MAX_GET_LIMIT)
        max_bytes: Optional[int] = None
        if query.get("max_fetch_bytes"):
            max_bytes = _int_param(query, "max_fetch_bytes", 0, 0, 2**62)
        records = self.store.read(stream, index, start, limit, max_bytes)
        next_cursor = self._make_cursor(stream, index, start + len(records))
        data_bytes = sum(len(r.data) for r in records)
        if request.is_protobuf:
            body = protobuf.encode_get_records_result(
                next_cursor,
                [
                    protobuf.ProtoRecord(
                        r.sequence_number, r.data, r.partition_key, r.timestamp, "CreateTime"
                    )
                    for r in records
                ],
            )
            return Reply(200, body, PROTOBUF_TYPE, record_count=len(records), data_bytes=data_bytes)
        items = []
        for record in records:
            item: Dict[str, object] = {
                "sequence_number": record.sequence_number,
                "data": base64.b64encode(record.data).decode("ascii"),
                "timestamp": record.timestamp,
                "timestamp_type": "CreateTime",
            }
            if record.partition_key is not None:
                item["partition_key"] = record.partition_key
            items.append(item)
        return json_reply(
            200,
            {"records": items, "next_partition_cursor": next_cursor},
            record_count=len(records),
            data_bytes=data_bytes,
        )

    def _create_stream(self, request: Request) -> Reply:
        payload = _json_body(request)
        if "partition_count" not in payload:
            # Mandatory in the CreateStream API reference (support.huaweicloud.com, api-dis,
            # "Creating a Stream": stream_name and partition_count are required).
            raise bad_request("DIS.4200", "partition_count is required.")
        self.store.create(
            payload.get("stream_name", ""),  # the store validates every field's type
            payload["partition_count"],
            payload.get("stream_type", "COMMON"),
            payload.get("data_type", "BLOB"),
            payload.get("data_duration", DEFAULT_RETENTION_HOURS),
        )
        return Reply(201)

    def _describe_stream(self, request: Request, name: str) -> Reply:
        stream = self.store.get(name)
        query = request.query
        limit = _int_param(query, "limit_partitions", DEFAULT_DESCRIBE_LIMIT, 1, MAX_DESCRIBE_LIMIT)
        first = 0
        after = query.get("start_partitionId")
        if after:
            index = parse_partition_id(after)
            if index is None:
                raise bad_request("DIS.4201", f"Invalid start_partitionId: {after!r}.")
            first = index + 1
        with self.store.lock:
            self.store.expire(stream)  # sequence_number_range starts at the oldest record kept
            parts = stream.partitions[first : first + limit]
            described = [stream.describe_partition(p) for p in parts]
        count = len(stream.partitions)
        return json_reply(
            200,
            {
                "stream_name": stream.name,
                "stream_id": stream.stream_id,
                "create_time": stream.create_time,
                "last_modified_time": stream.create_time,
                "retention_period": stream.retention_hours,
                "status": "RUNNING",
                "stream_type": stream.stream_type,
                "data_type": stream.data_type,
                "partitions": described,
                "has_more_partitions": first + limit < count,
                "writable_partition_count": count,
                "readable_partition_count": count,
                "update_partition_counts": [],
                "tags": [],
                "sys_tags": [],
                "auto_scale_enabled": False,
                "auto_scale_min_partition_count": 0,
                "auto_scale_max_partition_count": 0,
            },
        )

    def _list_streams(self, request: Request) -> Reply:
        query = request.query
        limit = _int_param(query, "limit", DEFAULT_LIST_LIMIT, 1, MAX_LIST_LIMIT)
        after = query.get("start_stream_name") or ""
        names = self.store.names()
        selected = [n for n in names if n > after][:limit]
        infos = []
        for name in selected:
            try:
                infos.append(self.store.get(name).summary())
            except ServiceError:  # deleted meanwhile
                continue
        return json_reply(
            200,
            {
                "total_number": len(names),
                "stream_names": [i["stream_name"] for i in infos],
                "has_more_streams": bool(selected) and selected[-1] != names[-1],
                "stream_info_list": infos,
            },
        )

    def _security_key(self, request: Request) -> Reply:
        """The ECS/CCE metadata service's temporary credentials (DIS-API.md section 13).

        Every call issues a new set, valid for :attr:`token_ttl` seconds; earlier sets stay valid
        until their own expiry, as they do while the real service rotates them.
        """
        ak, key = self.temporary.issue(self.token_ttl)
        credential = {
            "access": ak,
            "secret": key.sk,
            "securitytoken": key.security_token,
            "expires_at": _iso(key.expires_at),
        }
        return json_reply(200, {"credential": credential})

    def _delete_stream(self, request: Request, name: str) -> Reply:
        self.store.delete(name)
        return Reply(204)

    def route(self, method: str, path: str) -> Tuple[str, Callable[[Request], Reply], str]:
        """Map a method and raw path to (operation, handler, project id from the path).

        The path is split at its ``/`` first and each segment decoded once, as the service
        does: decoding the whole path first, then each segment again, made ``%2541`` name
        ``A`` and an encoded ``%2F`` split a segment in two.

        Args:
            method: The HTTP method.
            path: The request path as received, percent-encoded, without the query.

        Returns:
            The operation name, the bound handler, and the project id in the path (``""`` for
            IAM).

        Raises:
            ServiceError: 404 for unknown paths, 405 for a known path with another method.
        """
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["v3", "auth", "tokens"]:
            return self._pick(method, {"POST": ("CreateToken", self._create_token)}, "")
        if parts == ["v3", "projects"]:
            return self._pick(method, {"GET": (LIST_PROJECTS_OPERATION, self._list_projects)}, "")
        if "/" + "/".join(parts) == METADATA_SECURITY_KEY_PATH:
            return self._pick(method, {"GET": (METADATA_OPERATION, self._security_key)}, "")
        if len(parts) >= 3 and parts[0] == "v2":
            project, rest = parts[1], parts[2:]
            table: Dict[str, Tuple[str, Callable[[Request], Reply]]] = {}
            if rest == ["records"]:
                table = {
                    "POST": ("PutRecords", self._put_records),
                    "GET": ("GetRecords", self._get_records),
                }
            elif rest == ["cursors"]:
                table = {"GET": ("GetCursor", self._get_cursor)}
            elif rest == ["streams"]:
                table = {
                    "POST": ("CreateStream", self._create_stream),
                    "GET": ("ListStreams", self._list_streams),
                }
            elif len(rest) == 2 and rest[0] == "streams" and rest[1]:
                name = rest[1]
                table = {
                    "GET": ("DescribeStream", lambda r: self._describe_stream(r, name)),
                    "DELETE": ("DeleteStream", lambda r: self._delete_stream(r, name)),
                }
            if table:
                return self._pick(method, table, project)
        raise ServiceError(404, "APIG.0101", "The API does not exist or has not been published.")

    @staticmethod
    def _pick(
        method: str, table: Mapping[str, Tuple[str, Callable[[Request], Reply]]], project: str
    ) -> Tuple[str, Callable[[Request], Reply], str]:
        if method not in table:
            raise ServiceError(405, "APIG.0101", f"Method {method} is not allowed on this path.")
        operation, handler = table[method]
        return operation, handler, project

    def handle(self, request: Request, drop: Callable[[], None]) -> Optional[Reply]:
        """Authenticate, apply faults and execute one request.

        Args:
            request: The parsed request.
            drop: Called instead of replying when a dropped connection is scripted; it runs
                after the request has been logged.

        Returns:
            The reply, or None when the connection was dropped. Rejections become error replies
            and unexpected exceptions a 500 DIS.5000 reply, so this never raises. Every request
            is logged.
        """
        operation = "Unknown"
        reply: Optional[Reply]
        dropping = False
        try:
            operation, handler, project = self.route(request.method, request.raw_path)
            if operation not in _IAM_OPERATIONS:
                self._authenticate(request)
                self._check_project(request, project)
            if operation == "PutRecords":
                request.put = self._decode_put(request)
                _, _, records = request.put
                request.record_count = len(records)
                request.data_bytes = sum(len(r.data) for r in records)
            delay = self.faults.delay_for(operation)
            if delay:
                self.stopping.wait(delay)
            if self.faults.take_drop(operation):
                dropping = True
                reply = None
            else:
                failure = self.faults.take_failure(operation)
                if failure is not None:
                    raise failure
                reply = handler(request)
        except ServiceError as exc:
            reply = error_reply(exc, iam=operation in ("CreateToken", LIST_PROJECTS_OPERATION))
        except Exception:  # noqa: BLE001  # a bug must not kill the server; reply 500 instead
            if self.verbose:
                traceback.print_exc(file=sys.stderr)
            reply = error_reply(ServiceError(500, "DIS.5000", "Internal emulator error."))
        if reply is not None and operation == "GetRecords":
            request.record_count, request.data_bytes = reply.record_count, reply.data_bytes
        self.record(
            RequestLogEntry(
                method=request.method,
                path=request.path,
                operation=operation,
                status=reply.status if reply is not None else 0,
                error_code=reply.error_code if reply is not None else None,
                record_count=request.record_count,
                data_bytes=request.data_bytes,
                body_bytes=len(request.body),
                auth=request.auth,
                time=time.time(),
            )
        )
        if dropping:
            # Log first, then drop: the client sees the reset only once the entry is recorded,
            # so a test reading the log after its retry finds the dropped request in order.
            drop()
        return reply


def _iso(seconds: float) -> str:
    """Format epoch seconds the way IAM writes ``expires_at``: UTC, microseconds, ``Z``."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
