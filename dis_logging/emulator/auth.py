"""Server-side authentication: IAM tokens and AK/SK signature verification.

Written independently of the client-side signer so the emulator can judge it. Three AK/SK forms are
accepted (DIS-API.md sections 10 and 11):

* ``SDK-HMAC-SHA256 Access=AK, SignedHeaders=..., Signature=...`` (v3 SDK / API gateway);
* ``SDK-HMAC-SHA256 Credential=AK/<yyyymmdd>/<region>/dis/sdk_request, ...`` (legacy, plain);
* ``V11-HMAC-SHA256 Credential=AK/<yyyymmdd>/<region>/dis/sdk_request, ...`` (legacy, derived),
  and the v3 SDK's derived form ``V11-HMAC-SHA256 Credential=AK/<date>/<region>/<service>, ...``.

Every failure raises :class:`~dis_logging.emulator.state.ServiceError` with HTTP 441 and a DIS.41xx
code; messages never contain a secret or the received signature.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Final, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import parse_qsl, quote, unquote

from dis_logging.emulator.state import ServiceError

#: HTTP status DIS uses for authentication failures (DIS-API.md §9).
AUTH_STATUS: Final = 441

#: Largest accepted difference between X-Sdk-Date and the server clock, seconds (DIS-API.md §3, §8).
MAX_CLOCK_SKEW: Final = 15 * 60.0

#: Payload hash of an empty body (DIS-API.md §10).
EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()
#: X-Sdk-Date format, UTC (DIS-API.md §3).
SDK_DATE_FORMAT: Final = "%Y%m%dT%H%M%SZ"
#: X-Sdk-Content-Sha256 value that exempts the body from the signature (DIS-API.md §10).
UNSIGNED_PAYLOAD: Final = "UNSIGNED-PAYLOAD"

# Error codes of the AK/SK failures, as DIS documents them (DIS-API.md §9): 4101 empty (or
# unusable) Authorization, 4103 empty (or unusable) X-Sdk-Date, 4106 empty AK, 4107 invalid AK,
# 4108 empty service name, 4111 bad region, 4112 signature mismatch. Failures the list does not
# name use the nearest documented code.
MISSING_AUTHORIZATION: Final = "DIS.4101"
MALFORMED_AUTHORIZATION: Final = "DIS.4101"
MISSING_DATE: Final = "DIS.4103"
BAD_DATE: Final = "DIS.4103"
MISSING_AK: Final = "DIS.4106"
UNKNOWN_AK: Final = "DIS.4107"
MISSING_SERVICE: Final = "DIS.4108"
BAD_REGION: Final = "DIS.4111"
SIGNATURE_MISMATCH: Final = "DIS.4112"
MISSING_SIGNED_HEADER: Final = "DIS.4112"
BAD_SECURITY_TOKEN: Final = "DIS.4112"
#: Most header names a ``SignedHeaders`` list may hold. Real clients sign two to six; the cap keeps
#: a hostile list from costing the verifier work before the request is authenticated.
MAX_SIGNED_HEADERS: Final = 32
#: Issued tokens and temporary sets kept before the expired ones are forgotten; the threshold then
#: doubles with what is left, so a long run that logs in often holds about twice its live ones.
PRUNE_AT_LEAST: Final = 1024
#: Seconds a temporary AK/SK set is remembered after it expires, so that using it is still told
#: apart from an unknown key (DIS.4112 "expired", not DIS.4107) for a while.
TEMPORARY_KEY_GRACE: Final = 86400.0
TOKEN_MISSING: Final = "DIS.4113"
TOKEN_INVALID: Final = "DIS.4114"


def auth_error(code: str, message: str) -> ServiceError:
    """Return a 441 :class:`ServiceError` with ``code`` and ``message``.

    Args:
        code: the DIS error code, one of the ``DIS.41xx`` constants of this module.
        message: the ``error_msg`` text; must not contain a secret.

    Returns:
        The error, for the caller to raise.
    """
    return ServiceError(AUTH_STATUS, code, message)


@dataclass
class TokenInfo:
    """What the emulator remembers about an issued token (never the token itself in a repr).

    Attributes:
        issued_at: when the token was issued, seconds since the epoch.
        expires_at: when it stops being accepted, seconds since the epoch.
        project_id: the project it is scoped to; ``None`` for a token without project scope.
    """

    issued_at: float
    expires_at: float
    project_id: Optional[str]


class TokenStore:
    """Issues and checks opaque IAM tokens; safe to use from several threads.

    Args:
        clock: Wall clock in seconds since the epoch; default :func:`time.time`.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: Dict[str, TokenInfo] = {}
        self._prune_at = PRUNE_AT_LEAST

    def issue(self, ttl: float, project_id: Optional[str]) -> Tuple[str, TokenInfo]:
        """Create a token and remember it.

        Args:
            ttl: seconds the token stays valid; ``0`` or less gives a token that is already
                expired.
            project_id: the project the token is scoped to; ``None`` for a token that no DIS
                project accepts.

        Returns:
            The token string (several hundred characters, like IAM's) and its info.
        """
        # Real tokens are KBs of base64 starting with "MII"; the length exercises header limits.
        token = "MII" + base64.urlsafe_b64encode(secrets.token_bytes(600)).decode("ascii")
        now = self._clock()
        info = TokenInfo(issued_at=now, expires_at=now + ttl, project_id=project_id)
        with self._lock:
            if len(self._tokens) >= self._prune_at:
                # An expired token and an unknown one get the same answer (DIS.4114), so the
                # expired ones can go: a long run that logs in often stays bounded.
                self._tokens = {t: i for t, i in self._tokens.items() if now < i.expires_at}
                self._prune_at = max(PRUNE_AT_LEAST, 2 * len(self._tokens))
            self._tokens[token] = info
        return token, info

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)

    def check(self, token: Optional[str], project_id: Optional[str]) -> None:
        """Accept ``token`` for a DIS call in ``project_id``.

        Args:
            token: the ``X-Auth-Token`` header value; ``None`` or ``""`` when absent.
            project_id: the project named in the request path; None accepts a token of any scope
                (IAM calls).

        Raises:
            ServiceError: 441 DIS.4113 when missing, 441 DIS.4114 when unknown or expired, 403
                DIS.4116 when the token is not scoped to ``project_id``.
        """
        if not token:
            raise auth_error(TOKEN_MISSING, "The X-Auth-Token header is missing.")
        with self._lock:
            info = self._tokens.get(token)
        if info is None:
            raise auth_error(TOKEN_INVALID, "The token is invalid.")
        if self._clock() >= info.expires_at:
            raise auth_error(TOKEN_INVALID, "The token has expired.")
        if project_id is not None and info.project_id != project_id:
            raise ServiceError(403, "DIS.4116", "The token is not scoped to this project.")

    def expire_all(self) -> None:
        """Make every token issued so far expired; tokens issued later are not affected."""
        with self._lock:
            for info in self._tokens.values():
                info.expires_at = min(info.expires_at, self._clock() - 1.0)


def encode(text: str) -> str:
    """Percent-encode ``text`` keeping only ``A-Z a-z 0-9 - _ . ~`` literal (UTF-8).

    Args:
        text: decoded text.

    Returns:
        The encoded text, with upper-case hex escapes.
    """
    return quote(text, safe="~")


def canonical_uri(path: str) -> str:
    """Return the v3 canonical URI of a raw request path (DIS-API.md §10 step 3).

    Args:
        path: the path as received, percent-encoded, without the query.

    Returns:
        Each segment decoded and re-encoded with :func:`encode`, ending with ``/``.
    """
    encoded = "/".join(encode(segment) for segment in unquote(path).split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def legacy_canonical_uri(path: str) -> str:
    """Return the legacy canonical URI: empty and ``.`` segments dropped, ``/`` at both ends.

    Args:
        path: the path as received, percent-encoded, without the query. ``..`` removes the
            segment before it.

    Returns:
        The encoded segments between slashes; ``"/"`` when none remain.
    """
    segments: List[str] = []
    for segment in unquote(path).split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(encode(segment))
    return "/" + "/".join(segments) + "/" if segments else "/"


def query_pairs(raw_query: str) -> List[Tuple[str, str]]:
    """Decode a raw query string into (name, value) pairs, keeping blank values.

    Args:
        raw_query: the query as received, without ``?``; ``+`` decodes to a space.

    Returns:
        The pairs in their original order; empty for ``""``.
    """
    return parse_qsl(raw_query, keep_blank_values=True)


def canonical_query(pairs: Sequence[Tuple[str, str]]) -> str:
    """Return the v3 canonical query string (DIS-API.md §10 step 4).

    Args:
        pairs: decoded ``(name, value)`` pairs, in any order.

    Returns:
        ``name=value`` items, encoded, sorted and joined by ``&``; ``""`` for no pairs.
    """
    return "&".join(f"{encode(k)}={encode(v)}" for k, v in sorted(pairs))


def legacy_canonical_query(pairs: Sequence[Tuple[str, str]]) -> str:
    """Return the legacy canonical query: sorted ``name=value``, an empty value as ``name``.

    Args:
        pairs: decoded ``(name, value)`` pairs, in any order.

    Returns:
        The encoded items, sorted and joined by ``&``; ``""`` for no pairs.
    """
    items = [encode(k) if v == "" else f"{encode(k)}={encode(v)}" for k, v in pairs]
    return "&".join(sorted(items))


def canonical_request(
    method: str,
    uri: str,
    query: str,
    headers: Sequence[Tuple[str, str]],
    payload_hash: str,
) -> str:
    """Join the parts of a canonical request (DIS-API.md §10 step 7).

    Args:
        method: HTTP method, upper case.
        uri: Canonical URI.
        query: Canonical query string.
        headers: (lower-case name, value) of each signed header, in signed order.
        payload_hash: Hex SHA-256 of the body, or the literal ``X-Sdk-Content-Sha256`` value.

    Returns:
        The canonical request text.
    """
    block = "".join(f"{name}:{value.strip()}\n" for name, value in headers)
    signed = ";".join(name for name, _ in headers)
    return "\n".join([method, uri, query, block, signed, payload_hash])


def sha256_hex(data: bytes) -> str:
    """Return the lowercase hex SHA-256 of ``data``.

    Args:
        data: the bytes to hash.

    Returns:
        64 lowercase hex digits.
    """
    return hashlib.sha256(data).hexdigest()


def hmac_sha256(key: bytes, message: str) -> bytes:
    """Return HMAC-SHA256 of the UTF-8 ``message`` under ``key``.

    Args:
        key: the HMAC key.
        message: text, encoded as UTF-8 before hashing.

    Returns:
        The 32-byte digest.
    """
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def v3_signature(sk: str, sdk_date: str, canonical: str) -> str:
    """Return the v3 ``SDK-HMAC-SHA256`` signature of a canonical request (DIS-API.md §10).

    Args:
        sk: the secret key.
        sdk_date: the ``X-Sdk-Date`` value, as received.
        canonical: the canonical request from :func:`canonical_request`.

    Returns:
        The signature, 64 lowercase hex digits.
    """
    string_to_sign = "SDK-HMAC-SHA256\n{}\n{}".format(
        sdk_date, sha256_hex(canonical.encode("utf-8"))
    )
    return hmac_sha256(sk.encode("utf-8"), string_to_sign).hex()


def derived_secret(ak: str, sk: str, info: str) -> str:
    """Return the hex derived secret of the ``V11-HMAC-SHA256`` forms (HKDF-SHA256, one block).

    Args:
        ak: Access key (the HKDF salt).
        sk: Secret key (the input key material).
        info: ``<yyyymmdd>/<region>/<service>``.

    Returns:
        64 lowercase hex digits.
    """
    prk = hmac.new(ak.encode("utf-8"), sk.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(prk, info.encode("utf-8") + b"\x01", hashlib.sha256).hexdigest()


def legacy_signature(
    algorithm: str, secret: str, sdk_date: str, scope: Sequence[str], canonical: str
) -> str:
    """Return a legacy scoped signature (DIS-API.md §11).

    Args:
        algorithm: ``SDK-HMAC-SHA256`` or ``V11-HMAC-SHA256``; only written into the string to sign.
        secret: The SK (plain form) or the derived secret (derived form).
        sdk_date: The X-Sdk-Date value.
        scope: ``[yyyymmdd, region, service, "sdk_request"]``.
        canonical: The canonical request.

    Returns:
        The signature, 64 lowercase hex digits.
    """
    string_to_sign = "\n".join(
        [algorithm, sdk_date, "/".join(scope), sha256_hex(canonical.encode("utf-8"))]
    )
    key = ("SDK" + secret).encode("utf-8")
    for part in scope:
        key = hmac_sha256(key, part)
    return hmac_sha256(key, string_to_sign).hex()


def v3_derived_signature(ak: str, sk: str, sdk_date: str, info: str, canonical: str) -> str:
    """Return the v3 SDK's ``V11-HMAC-SHA256`` signature (scope ``<date>/<region>/<service>``).

    Args:
        ak: the access key; salts the derived secret.
        sk: the secret key.
        sdk_date: the ``X-Sdk-Date`` value, as received.
        info: the credential scope, ``<date>/<region>/<service>``.
        canonical: the canonical request from :func:`canonical_request`.

    Returns:
        The signature, 64 lowercase hex digits.
    """
    string_to_sign = "\n".join(
        ["V11-HMAC-SHA256", sdk_date, info, sha256_hex(canonical.encode("utf-8"))]
    )
    return hmac_sha256(derived_secret(ak, sk, info).encode("utf-8"), string_to_sign).hex()


@dataclass(frozen=True)
class Authorization:
    """A parsed ``Authorization`` header.

    Attributes:
        algorithm: ``SDK-HMAC-SHA256`` or ``V11-HMAC-SHA256``.
        ak: the access key.
        scope: the credential scope split at ``/``: empty for the v3 ``Access=`` form, three
            parts for the v3 derived form, four (ending in ``sdk_request``) for the legacy forms.
        signed_headers: the lower-case names from ``SignedHeaders``.
        signature: the signature as received.
    """

    algorithm: str
    ak: str
    scope: Tuple[str, ...]
    signed_headers: Tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Authorization:
    """Parse an ``Authorization`` header of any accepted form.

    Args:
        value: the header value.

    Returns:
        Its parts.

    Raises:
        ServiceError: 441 DIS.4101 when the header cannot be parsed or names another algorithm.
    """
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm not in ("SDK-HMAC-SHA256", "V11-HMAC-SHA256"):
        raise auth_error(MALFORMED_AUTHORIZATION, "Unsupported Authorization algorithm.")
    fields: Dict[str, str] = {}
    for item in rest.split(","):
        name, sep, field_value = item.strip().partition("=")
        if not sep:
            raise auth_error(MALFORMED_AUTHORIZATION, "Unparsable Authorization header.")
        fields[name.strip()] = field_value.strip()
    scope: Tuple[str, ...] = ()
    if "Access" in fields:
        ak = fields["Access"]
    elif "Credential" in fields:
        ak, _, scope_text = fields["Credential"].partition("/")
        scope = tuple(scope_text.split("/"))
        if len(scope) not in (3, 4) or (len(scope) == 4 and scope[3] != "sdk_request"):
            raise auth_error(MALFORMED_AUTHORIZATION, "Unparsable credential scope.")
    else:
        raise auth_error(MISSING_AK, "The Authorization header names no access key.")
    if algorithm == "V11-HMAC-SHA256" and not scope:
        raise auth_error(MALFORMED_AUTHORIZATION, "V11-HMAC-SHA256 needs a Credential scope.")
    names = [h.strip().lower() for h in fields.get("SignedHeaders", "").split(";")]
    # De-duplicated (first occurrence kept) and capped before any signature work: each repeat of
    # a header with variants (host with a port) would double the signatures to try.
    signed = tuple(dict.fromkeys(h for h in names if h))
    if len(signed) > MAX_SIGNED_HEADERS:
        raise auth_error(
            MALFORMED_AUTHORIZATION, f"SignedHeaders names more than {MAX_SIGNED_HEADERS} headers."
        )
    signature = fields.get("Signature", "")
    if not ak:
        raise auth_error(MISSING_AK, "The Authorization header names no access key.")
    if not signed or not signature:
        raise auth_error(MALFORMED_AUTHORIZATION, "Incomplete Authorization header.")
    return Authorization(algorithm, ak, scope, signed, signature)


def parse_sdk_date(value: str) -> float:
    """Parse an X-Sdk-Date value into seconds since the epoch.

    Args:
        value: the header value; surrounding whitespace is ignored.

    Returns:
        The UTC time it names, in seconds since the epoch.

    Raises:
        ServiceError: 441 DIS.4103 when the value is not ``YYYYMMDDTHHMMSSZ``.
    """
    try:
        parsed = time.strptime(value.strip(), SDK_DATE_FORMAT)
    except ValueError:
        raise auth_error(BAD_DATE, "X-Sdk-Date is not in YYYYMMDDTHHMMSSZ format.") from None
    return float(calendar.timegm(parsed))


def _header_value(name: str, value: str, *, utf8: bool, drop_port: bool) -> str:
    """Return one received header value as a client may have signed it."""
    if utf8:
        # http.server decodes header bytes as Latin-1; signers canonicalize the UTF-8 text.
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            value = value.encode("latin-1").decode("utf-8")
    if drop_port and name == "host" and ":" in value and not value.endswith("]"):
        # The legacy SDK signs the host without its port although the wire Host header has one.
        value = value.rsplit(":", 1)[0]
    return value


@dataclass
class TemporaryKey:
    """Temporary AK/SK credentials the metadata route handed out (secrets stay out of the repr).

    Attributes:
        sk: the secret key.
        security_token: the token that must come with every request signed by this key.
        expires_at: when the set stops being accepted, seconds since the epoch.
    """

    sk: str = field(repr=False)
    security_token: str = field(repr=False)
    expires_at: float


class TemporaryKeyStore:
    """Issues and looks up temporary AK/SK sets, as an IAM agency's metadata service hands out.

    Args:
        clock: Wall clock in seconds since the epoch; default :func:`time.time`.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: Dict[str, TemporaryKey] = {}
        self._prune_at = PRUNE_AT_LEAST

    def issue(self, ttl: float) -> Tuple[str, TemporaryKey]:
        """Create a new set valid for ``ttl`` seconds.

        Args:
            ttl: lifetime in seconds; ``0`` or less gives a set that is already expired.

        Returns:
            The access key and its :class:`TemporaryKey`.
        """
        ak = "TMP" + secrets.token_hex(10).upper()
        key = TemporaryKey(
            sk=secrets.token_urlsafe(30),
            # Real security tokens are long base64 blobs; the length exercises header limits.
            security_token="gQ" + base64.b64encode(secrets.token_bytes(900)).decode("ascii"),
            expires_at=self._clock() + ttl,
        )
        with self._lock:
            if len(self._keys) >= self._prune_at:
                cutoff = self._clock() - TEMPORARY_KEY_GRACE
                self._keys = {a: k for a, k in self._keys.items() if k.expires_at > cutoff}
                self._prune_at = max(PRUNE_AT_LEAST, 2 * len(self._keys))
            self._keys[ak] = key
        return ak, key

    def get(self, ak: str) -> Optional[TemporaryKey]:
        """Return the set of ``ak``, expired or not, or ``None`` for an unknown key."""
        with self._lock:
            return self._keys.get(ak)

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def expire_all(self) -> None:
        """Make every set issued so far expired; sets issued later are not affected."""
        with self._lock:
            for key in self._keys.values():
                key.expires_at = min(key.expires_at, self._clock() - 1.0)


@dataclass(frozen=True)
class SignedRequest:
    """The parts of a received request that signatures cover.

    Attributes:
        method: HTTP method.
        path: Raw path, percent-encoded as received, without the query.
        query: Raw query string without ``?``.
        headers: Header names lower-cased to values.
        body: Raw body bytes.
    """

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


class SignatureVerifier:
    """Checks AK/SK-signed requests against known key pairs.

    Args:
        keys: Access key to secret key.
        region: The region credential scopes (legacy and v3 derived) must name.
        clock: Wall clock in seconds since the epoch; default :func:`time.time`.
        security_token: When set, AK/SK requests must carry this ``X-Security-Token``; when None any
            (or no) security token is accepted.
        temporary: Temporary sets also accepted, each only with its own security token, signed,
            until it expires; default None accepts none.
    """

    def __init__(
        self,
        keys: Mapping[str, str],
        region: str,
        clock: Callable[[], float] = time.time,
        security_token: Optional[str] = None,
        temporary: Optional[TemporaryKeyStore] = None,
    ) -> None:
        self._keys = dict(keys)
        self._region = region
        self._clock = clock
        self._security_token = security_token
        self._temporary = temporary

    def verify(self, request: SignedRequest) -> str:
        """Verify the request's signature and return its access key.

        Args:
            request: the received request.

        Returns:
            The access key that signed it.

        Raises:
            ServiceError: 441 with DIS.4100-4108 describing the failure.
        """
        header = request.headers.get("authorization")
        if not header:
            raise auth_error(MISSING_AUTHORIZATION, "The Authorization header is missing.")
        auth = parse_authorization(header)
        sdk_date = request.headers.get("x-sdk-date")
        if not sdk_date:
            raise auth_error(MISSING_DATE, "The X-Sdk-Date header is missing.")
        signed_at = parse_sdk_date(sdk_date)
        if abs(self._clock() - signed_at) > MAX_CLOCK_SKEW:
            raise auth_error(BAD_DATE, "X-Sdk-Date is more than 15 minutes off the server time.")
        sk = self._keys.get(auth.ak)
        required_token = self._security_token
        temporary: Optional[TemporaryKey] = None
        if sk is None and self._temporary is not None:
            temporary = self._temporary.get(auth.ak)
            if temporary is not None:
                if self._clock() >= temporary.expires_at:
                    raise auth_error(BAD_SECURITY_TOKEN, "The temporary credentials have expired.")
                sk, required_token = temporary.sk, temporary.security_token
        if sk is None:
            raise auth_error(UNKNOWN_AK, "The access key is unknown.")
        if required_token is not None and not hmac.compare_digest(
            request.headers.get("x-security-token", "").encode("utf-8"),
            required_token.encode("utf-8"),
        ):
            raise auth_error(BAD_SECURITY_TOKEN, "The security token is missing or invalid.")
        if temporary is not None and "x-security-token" not in auth.signed_headers:
            # A temporary set's token must be covered by the signature (DIS-API.md §13).
            raise auth_error(
                MISSING_SIGNED_HEADER, "Temporary credentials must sign X-Security-Token."
            )
        if auth.scope:
            if len(auth.scope) == 4 and not auth.scope[2]:
                raise auth_error(MISSING_SERVICE, "The credential scope names no service.")
            if auth.scope[0] != sdk_date.strip()[:8]:
                raise auth_error(BAD_DATE, "The credential scope date does not match X-Sdk-Date.")
            if auth.scope[1] != self._region:
                raise auth_error(BAD_REGION, "The credential scope names another region.")
        for name in auth.signed_headers:
            if name not in request.headers:
                raise auth_error(MISSING_SIGNED_HEADER, "A signed header is missing.")
        expected = auth.signature.strip().lower().encode("ascii", "replace")
        for candidate in self._candidates(auth, sk, sdk_date.strip(), request):
            if hmac.compare_digest(candidate.encode("ascii"), expected):
                return auth.ak
        raise auth_error(SIGNATURE_MISMATCH, "The request signature does not match.")

    def _candidates(
        self, auth: Authorization, sk: str, sdk_date: str, request: SignedRequest
    ) -> List[str]:
        """Return every signature that would be valid for ``request``, given the variants."""
        pairs = query_pairs(request.query)
        legacy = len(auth.scope) == 4
        if legacy:
            uris = [legacy_canonical_uri(request.path)]
            queries = [legacy_canonical_query(pairs)]
        else:
            uris = [canonical_uri(request.path)]
            queries = [canonical_query(pairs)]
        payloads = self._payload_hashes(request, auth.signed_headers)
        signatures: List[str] = []
        for headers in self._header_sets(auth.signed_headers, request.headers):
            for uri in uris:
                for query in queries:
                    for payload in payloads:
                        text = canonical_request(
                            request.method.upper(), uri, query, headers, payload
                        )
                        signatures.append(self._sign(auth, sk, sdk_date, text))
        return signatures

    @staticmethod
    def _payload_hashes(request: SignedRequest, signed: Sequence[str]) -> List[str]:
        """Return the payload hash to sign with: the body's own, unless the client signed an
        ``X-Sdk-Content-Sha256`` header (then its value, e.g. ``UNSIGNED-PAYLOAD``).

        An unsigned declared hash is ignored: trusting it would let anyone who captured a
        signed request replace its body.
        """
        # As Huawei's signers do: an empty body always hashes as empty, whatever is declared.
        declared = request.headers.get("x-sdk-content-sha256")
        if request.body and declared and "x-sdk-content-sha256" in signed:
            return [declared.strip()]
        return [sha256_hex(request.body)]

    @staticmethod
    def _header_sets(
        names: Sequence[str], headers: Mapping[str, str]
    ) -> List[List[Tuple[str, str]]]:
        """Return the readings of the signed headers a client may have used: at most four.

        A client decodes every header the same way and either keeps or drops the port of
        ``host``, so the readings are combined across all headers at once, never per header
        (per header, n headers with two readings each would be 2^n signatures to try).
        """
        sets: List[List[Tuple[str, str]]] = []
        for utf8 in (False, True):
            for drop_port in (False, True):
                reading = [
                    (name, _header_value(name, headers[name], utf8=utf8, drop_port=drop_port))
                    for name in names
                ]
                if reading not in sets:
                    sets.append(reading)
        return sets

    @staticmethod
    def _sign(auth: Authorization, sk: str, sdk_date: str, canonical: str) -> str:
        """Sign ``canonical`` with the algorithm and scope form that ``auth`` names."""
        if not auth.scope:
            return v3_signature(sk, sdk_date, canonical)
        if len(auth.scope) == 3:
            return v3_derived_signature(auth.ak, sk, sdk_date, "/".join(auth.scope), canonical)
        secret = sk
        if auth.algorithm == "V11-HMAC-SHA256":
            secret = derived_secret(auth.ak, sk, "/".join(auth.scope[:3]))
        return legacy_signature(auth.algorithm, secret, sdk_date, auth.scope, canonical)
