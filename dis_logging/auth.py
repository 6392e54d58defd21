"""Authentication for DIS requests: IAM tokens and AK/SK signatures.

Three ways to authenticate, chosen by :class:`Credentials`:

* **AK/SK** -- :class:`AKSKSigner` computes the ``SDK-HMAC-SHA256`` signature of Huawei Cloud's
  v3 SDKs (DIS-API.md section 10) and :class:`AKSKAuth` applies it to each outgoing ``requests``
  request. :class:`LegacySigner` produces the two forms of the dedicated DIS SDK (section 11).
* **IAM password** -- a :class:`TokenCache` holds the token that the client fetches from IAM
  (section 4), refreshes it ahead of expiry with a single fetch at a time, and forgets it when DIS
  rejects it. :class:`TokenAuth` puts the token in ``X-Auth-Token``.
* **Ready token** -- :class:`StaticToken` wraps a token string or a callable returning one.

Nothing here performs I/O: the IAM call itself lives in :mod:`dis_logging.client`, the only module
that talks HTTP. No repr or message in this module ever shows a token, password, secret key or
security token; a secret that has to sit in a local variable is held in a :class:`Secret`, whose
repr is redacted, so tracebacks that capture local variables (Sentry, rich,
``traceback.TracebackException(capture_locals=True)``) do not show it either.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import (
    Callable,
    Dict,
    Final,
    Generic,
    List,
    Mapping,
    Optional,
    Protocol,
    Tuple,
    TypeVar,
    Union,
)
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from cachetools import TTLCache
from requests import PreparedRequest
from requests.auth import AuthBase

from dis_logging._report import SecretSet
from dis_logging.errors import ConfigError, TransportError

__all__ = [
    "AKSKAuth",
    "AKSKSigner",
    "Clock",
    "Credentials",
    "IssuedToken",
    "LegacySigner",
    "Secret",
    "StaticToken",
    "TemporaryAKSKAuth",
    "TemporaryCredentialCache",
    "TemporaryCredentials",
    "TokenAuth",
    "TokenCache",
    "TokenSource",
    "header_value",
    "iam_token_request",
    "parse_iam_token_reply",
    "parse_metadata_credentials",
]

#: Signature algorithm of the v3 SDKs and of the dedicated DIS SDK's plain form
#: (DIS-API.md §10, §11).
ALGORITHM: Final = "SDK-HMAC-SHA256"
#: Algorithm name of the dedicated DIS SDK's derived-key form (DIS-API.md §11).
DERIVED_ALGORITHM: Final = "V11-HMAC-SHA256"
#: Format of ``X-Sdk-Date``; the server rejects values more than 15 minutes off (DIS-API.md §3).
SDK_DATE_FORMAT: Final = "%Y%m%dT%H%M%SZ"
#: Hex SHA-256 of the empty string: the payload hash of a bodiless request (DIS-API.md §10.6).
EMPTY_SHA256: Final = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#: Refresh an IAM token this many seconds before it expires: tokens live 24 h, and about an hour
#: ahead is the suggested margin (DIS-API.md §4).
TOKEN_REFRESH_MARGIN: Final = 3600.0
#: ... or this fraction of its lifetime, whichever is smaller, so that short test TTLs still cache.
TOKEN_REFRESH_FRACTION: Final = 0.1
#: An IAM token that arrives with no lifetime left (``expires_at`` not after ``issued_at``, or
#: already past by this machine's clock when IAM sends no ``issued_at``) is kept this long
#: (seconds) before IAM is asked again, as for temporary credentials below: logging in again for
#: every request would not get a better one, and would hammer IAM.
TOKEN_RETRY_INTERVAL: Final = 30.0
#: Replace temporary AK/SK credentials this many seconds before their ``expires_at``: Huawei's own
#: SDKs fetch a new set ahead of expiry (DIS-API.md §13); the metadata service issues sets that
#: live hours, so ten minutes leaves room for several attempts.
TEMPORARY_REFRESH_MARGIN: Final = 600.0
#: ... or this fraction of the set's lifetime, whichever is smaller, so short lifetimes still cache.
TEMPORARY_REFRESH_FRACTION: Final = 0.2
#: After a failed refresh, the next attempt waits at most this long (seconds), or a quarter of the
#: time the current set has left, whichever is shorter; the current set is used meanwhile.
TEMPORARY_RETRY_INTERVAL: Final = 30.0

_REDACTED: Final = "<redacted>"
_CACHE_KEY: Final = "token"

TokenValue = Union[str, Callable[[], str]]
_T = TypeVar("_T", str, bytes)


class Secret(Generic[_T]):
    """Holds a secret string or byte string; its repr and str never show it.

    Used for values that must sit in a local variable or attribute (a token being checked, the
    body of an IAM request that carries the password), so that a traceback capturing local
    variables prints ``Secret(<redacted>)`` instead.

    Args:
        value: the secret.
    """

    __slots__ = ("_value",)
    _value: _T

    def __init__(self, value: _T) -> None:
        self._value = value

    def reveal(self) -> _T:
        """Return the secret itself; pass it straight on, do not keep it in a local variable."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({_REDACTED})"

    __str__ = __repr__


def _is_header_char(char: str) -> bool:
    # Printable ASCII and tab: what http.client sends as a header value without complaint
    # (RFC 9110 field-vchar plus SP/HTAB); anything else makes it raise with the value quoted.
    return " " <= char <= "~" or char == "\t"


def header_value(name: str, value: Secret[str]) -> str:
    """Return a secret header value without surrounding whitespace, after checking the rest.

    A token read from a file ends with a newline, and a security token copied from a console may
    be wrapped over several lines; ``http.client`` would refuse such a value with an exception
    that quotes it. Surrounding whitespace is removed; any other control or non-ASCII character
    is an error that names the setting but never shows the value.

    Args:
        name: the setting the value came from (``"token"``, ``"security_token"``, ``"ak"``).
        value: the value, wrapped so that this frame's locals do not show it.

    Returns:
        The stripped value.

    Raises:
        ConfigError: the stripped value is empty or contains a character that cannot go in an
            HTTP header; the message names ``name`` and the character's position, not the value.
    """
    cleaned = Secret(value.reveal().strip())
    text = cleaned.reveal()
    if not text:
        del text
        raise ConfigError(name, "is empty (or only whitespace)")
    # Printable ASCII throughout is the common case, checked in C; only other text is scanned.
    fine = text.isascii() and text.isprintable()
    bad = None if fine else next((i for i, c in enumerate(text) if not _is_header_char(c)), None)
    if bad is not None:
        del text
        raise ConfigError(
            name,
            f"contains a control or non-ASCII character at position {bad}, which an HTTP header "
            "cannot carry; check how the value was read (the value is not shown)",
        )
    return text


class Clock(Protocol):
    """A source of monotonic seconds, such as :func:`time.monotonic`."""

    def __call__(self) -> float: ...  # pragma: no cover - protocol


class TokenSource(Protocol):
    """Something that hands out the current ``X-Auth-Token`` and can be told it was rejected."""

    def get_token(self) -> str:
        """Return a token to send now.

        Returns:
            The ``X-Auth-Token`` value.

        Raises:
            Exception: whatever obtaining the token raised (for example a ``DISError`` from IAM).
        """
        ...  # pragma: no cover - protocol

    def invalidate(self, token: Optional[str] = None) -> None:
        """Forget ``token`` so that the next :meth:`get_token` call gets a new one.

        Args:
            token: the token the server rejected; default ``None``, which forgets anything held.
        """
        ...  # pragma: no cover - protocol


def _redact(value: object) -> str:
    """Return what a repr shows for a secret: ``None`` when unset, a placeholder otherwise."""
    return "None" if value is None else _REDACTED


@dataclass(frozen=True, init=False)
class Credentials:
    """One set of credentials for DIS, with a repr that never shows a secret.

    Exactly one way is used, in this order: ``token``, then ``ak``/``sk``, then
    ``username``/``password``/``domain_name``.

    Every field defaults to ``None``, which means "not set"; with nothing set, :attr:`kind` is
    ``"none"``.

    Args:
        ak: access key id; needs ``sk``.
        sk: secret access key.
        security_token: token of temporary AK/SK credentials, sent as ``X-Security-Token``; only
            valid together with ``ak``/``sk``.
        username: IAM user name for password authentication; needs ``password`` and ``domain_name``.
        password: IAM user password.
        domain_name: the account (domain) name the IAM user belongs to; the same as ``username`` for
            the account's own user.
        token: a ready ``X-Auth-Token``, or a callable returning one (called for every request).
            When set, the other fields are not checked.

    Raises:
        ConfigError: one half of a pair is missing (``ak`` without ``sk``, ``username`` without
            ``password`` or ``domain_name``, and so on), ``security_token`` is set without
            ``ak``/``sk``, or a value is an empty string.
    """

    ak: Optional[str] = None
    sk: Optional[str] = field(default=None, repr=False)
    security_token: Optional[str] = field(default=None, repr=False)
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    domain_name: Optional[str] = None
    token: Optional[TokenValue] = field(default=None, repr=False)

    def __init__(
        self,
        ak: Optional[str] = None,
        sk: Optional[str] = None,
        security_token: Optional[str] = None,
        username: Optional[str] = None,
        password: Optional[str] = None,
        domain_name: Optional[str] = None,
        token: Optional[TokenValue] = None,
    ) -> None:
        # Written out rather than generated: the values move into the object (whose repr
        # redacts them) and leave this frame before the checks can raise, so a traceback that
        # shows local variables does not show them.
        for name, value in (
            ("ak", ak),
            ("sk", sk),
            ("security_token", security_token),
            ("username", username),
            ("password", password),
            ("domain_name", domain_name),
            ("token", token),
        ):
            object.__setattr__(self, name, value)
        del sk, security_token, password, token, name, value
        self._check()

    def _check(self) -> None:
        # Only the type is named, never the value.
        for name in ("ak", "sk", "security_token", "username", "password", "domain_name"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ConfigError(
                    name, f"must be a string, got {type(getattr(self, name)).__name__}"
                )
        if not (self.token is None or isinstance(self.token, str) or callable(self.token)):
            raise ConfigError(
                "token", f"must be a string or a callable, got {type(self.token).__name__}"
            )
        for name in ("ak", "sk", "security_token", "username", "password", "domain_name", "token"):
            if getattr(self, name) == "":
                raise ConfigError(name, "must not be empty; leave it unset instead")
        # Values sent as header values lose surrounding whitespace (a newline from a file) and
        # must not contain other control characters. The values stay out of this frame's locals.
        for name in ("ak", "security_token", "token"):
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, header_value(name, Secret(getattr(self, name))))
        # An SK read from a file keeps its newline; no SK has whitespace, and signing with it
        # failed as "signature does not match" (the handler's settings are stripped already).
        if isinstance(self.sk, str):
            object.__setattr__(self, "sk", self.sk.strip())
            if not self.sk:
                raise ConfigError("sk", "is empty (or only whitespace)")
        if self.token is not None:
            return
        if (self.ak is None) != (self.sk is None):
            missing = "sk" if self.sk is None else "ak"
            raise ConfigError(missing, "AK/SK authentication needs both ak and sk")
        if self.ak is None and self.security_token is not None:
            raise ConfigError("security_token", "a security token is used only with ak and sk")
        if self.ak is None and (self.username, self.password, self.domain_name) != (None,) * 3:
            for name in ("username", "password", "domain_name"):
                if getattr(self, name) is None:
                    raise ConfigError(
                        name, "password authentication needs username, password and domain_name"
                    )

    @property
    def kind(self) -> str:
        """``"token"``, ``"aksk"``, ``"password"``, or ``"none"`` when nothing is set."""
        if self.token is not None:
            return "token"
        if self.ak is not None:
            return "aksk"
        if self.username is not None:
            return "password"
        return "none"

    def secrets(self) -> Tuple[str, ...]:
        """Return the secrets held, for redaction.

        Returns:
            The SK, security token, password and token that are set, in that order; a token
            callable is left out.
        """
        values = (self.sk, self.security_token, self.password, self.token)
        return tuple(value for value in values if isinstance(value, str) and value)

    def __repr__(self) -> str:
        return (
            f"Credentials(kind={self.kind!r}, ak={self.ak!r}, sk={_redact(self.sk)}, "
            f"security_token={_redact(self.security_token)}, username={self.username!r}, "
            f"password={_redact(self.password)}, domain_name={self.domain_name!r}, "
            f"token={_redact(self.token)})"
        )


@dataclass(frozen=True)
class IssuedToken:
    """A token as IAM issued it.

    Args:
        value: the ``X-Subject-Token`` header; never shown by repr.
        lifetime: seconds the token stays valid, counted from when IAM issued it.
    """

    value: str = field(repr=False)
    lifetime: float


def iam_token_request(
    username: str,
    password: str,
    domain_name: str,
    *,
    project_id: Optional[str] = None,
    project_name: Optional[str] = None,
) -> bytes:
    """Build the JSON body of ``POST /v3/auth/tokens`` for a project-scoped password token.

    Args:
        username: IAM user name.
        password: its password.
        domain_name: the account name the user belongs to.
        project_id: scope the token to this project id (preferred: unambiguous); default
            ``None``, use ``project_name``.
        project_name: scope by project name instead, which is the region id (``cn-north-4``);
            default ``None``, use ``project_id``.

    Returns:
        The UTF-8 JSON body (DIS-API.md section 4).

    Raises:
        ValueError: neither or both of ``project_id`` and ``project_name`` are given.
    """
    if (project_id is None) == (project_name is None):
        raise ValueError("give exactly one of project_id and project_name")
    project = {"id": project_id} if project_id is not None else {"name": project_name}
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": username,
                        "password": password,
                        "domain": {"name": domain_name},
                    }
                },
            },
            "scope": {"project": project},
        }
    }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def _parse_iam_time(text: str) -> datetime:
    """Parse an IAM timestamp (``...Z`` with or without fraction, or ISO 8601) as aware UTC.

    Raises:
        ValueError: the text is in none of these forms.
    """
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def parse_iam_token_reply(
    subject_token: Optional[str],
    body: object,
    *,
    now: Optional[datetime] = None,
) -> IssuedToken:
    """Turn a successful IAM reply into an :class:`IssuedToken`.

    The lifetime is ``expires_at - issued_at``, both from the server, so that a skewed local clock
    does not matter; without ``issued_at`` it is ``expires_at - now``.

    Args:
        subject_token: the ``X-Subject-Token`` response header.
        body: the decoded JSON body, with ``token.expires_at`` and usually ``token.issued_at``.
        now: the current UTC time, used only when ``issued_at`` is missing; default ``None``,
            which reads the system clock.

    Returns:
        The token and its lifetime in seconds.

    Raises:
        ValueError: the header is missing or repeated, or the body lacks a readable
            ``expires_at``.
    """
    if not subject_token:
        raise ValueError("the IAM reply has no X-Subject-Token header")
    if "," in subject_token:
        # Repeated headers arrive joined with ", "; IAM tokens are base64 text (DIS-API.md §4:
        # opaque; a comma in one is inferred to be impossible).
        raise ValueError("the IAM reply has more than one X-Subject-Token header")
    token = body.get("token") if isinstance(body, dict) else None
    expires = token.get("expires_at") if isinstance(token, dict) else None
    if not isinstance(expires, str):
        raise ValueError("the IAM reply has no token.expires_at")
    issued = token.get("issued_at") if isinstance(token, dict) else None
    try:
        expires_at = _parse_iam_time(expires)
        if isinstance(issued, str):
            start = _parse_iam_time(issued)
        else:
            start = now if now is not None else datetime.now(timezone.utc)
    except ValueError:
        raise ValueError("the IAM reply has an unreadable token.expires_at or issued_at") from None
    return IssuedToken(subject_token, (expires_at - start).total_seconds())


class _Flight:
    """One fetch in progress; the fetching thread hands its outcome to the threads waiting on it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Optional[str] = None
        self.error: Optional[BaseException] = None

    def wait(self, timeout: Optional[float] = None) -> str:
        """Block until the fetch ends (at most ``timeout`` seconds; ``None`` waits for it).

        Returns:
            The fetched token.

        Raises:
            TransportError: the fetch did not end within ``timeout`` (retryable).
            Exception: whatever the fetch raised.
        """
        if not self.done.wait(timeout):
            raise TransportError(
                "IAM token: another thread's fetch did not end within the deadline"
            )
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


class TokenCache:
    """Caches an IAM token, refreshes it ahead of expiry, and lets only one thread fetch at a time.

    The token sits in a :class:`cachetools.TTLCache` whose TTL is the token's lifetime minus a
    margin (the smaller of ``refresh_margin`` and ``refresh_fraction`` of the lifetime), so a 24 h
    token is replaced after 23 h, while it is still valid. When the cache is empty, the first caller
    runs ``fetch``; callers arriving meanwhile wait for that result (or its exception) instead of
    fetching too.

    Args:
        fetch: performs the IAM request and returns the token; may raise (the client raises
            :class:`~dis_logging.errors.DISError` subclasses). Never called with the lock held.
        clock: monotonic seconds for the TTL; default :func:`time.monotonic`. Tests pass a fake.
        refresh_margin: at most this many seconds before expiry the token is replaced; default
            :data:`TOKEN_REFRESH_MARGIN` (3600.0). ``0`` keeps a token until it expires.
        refresh_fraction: at most this fraction of the lifetime before expiry; default
            :data:`TOKEN_REFRESH_FRACTION` (0.1). ``0`` keeps a token until it expires.
        wait_limit: returns how long the calling thread may still wait for another thread's fetch,
            in seconds, or ``None`` for as long as it takes (the default when not given). The client
            passes what is left of the current call's deadline, so a bounded ``flush()`` or
            ``close()`` is not held up by a slow IAM.
        report: called with a one-line message, without secrets, when a token arrives with no
            lifetime left (it is then kept for ``retry_interval``); once until a token with a
            lifetime arrives again; default ``None``, no report.
        retry_interval: how long a token that arrives with no lifetime left is kept, in seconds;
            default :data:`TOKEN_RETRY_INTERVAL` (30.0). :meth:`invalidate` (DIS refused it)
            still forgets it at once.
    """

    def __init__(
        self,
        fetch: Callable[[], IssuedToken],
        *,
        clock: Clock = time.monotonic,
        refresh_margin: float = TOKEN_REFRESH_MARGIN,
        refresh_fraction: float = TOKEN_REFRESH_FRACTION,
        wait_limit: Optional[Callable[[], Optional[float]]] = None,
        report: Optional[Callable[[str], None]] = None,
        retry_interval: float = TOKEN_RETRY_INTERVAL,
    ) -> None:
        self._fetch = fetch
        self._wait_limit = wait_limit
        self._clock = clock
        self._refresh_margin = refresh_margin
        self._refresh_fraction = refresh_fraction
        self._report = report
        self._retry_interval = retry_interval
        self._stale_reported = False  # a token without lifetime was reported; reset by a good one
        self._lock = threading.Lock()
        self._cache: TTLCache[str, str] = TTLCache(maxsize=1, ttl=0, timer=clock)
        self._flight: Optional[_Flight] = None
        self._fetches = 0

    @property
    def fetch_count(self) -> int:
        """How many times ``fetch`` has been called."""
        return self._fetches

    def ttl_for(self, lifetime: float) -> float:
        """Return how long a token stays cached before it is refreshed.

        Args:
            lifetime: the token's lifetime in seconds, as IAM reported it.

        Returns:
            ``lifetime`` minus the refresh margin, in seconds; 0 (not cached at all) when the
            lifetime is 0 or negative.
        """
        margin = min(self._refresh_margin, lifetime * self._refresh_fraction)
        return max(lifetime - margin, 0.0)

    def get_token(self) -> str:
        """Return the cached token, fetching a new one when there is none or it is due for refresh.

        Returns:
            The token value.

        Raises:
            Exception: whatever ``fetch`` raised, in this thread and in every waiting thread.
        """
        with self._lock:
            value = self._cache.get(_CACHE_KEY)
            if value is not None:
                return value
            flight = self._flight
            if flight is None:
                flight = self._flight = _Flight()
                leader = True
            else:
                leader = False
        if not leader:
            return flight.wait(self._wait_limit() if self._wait_limit is not None else None)
        try:
            self._fetches += 1
            issued = self._fetch()
        except BaseException as exc:
            with self._lock:
                self._flight = None
            flight.error = exc
            flight.done.set()
            raise
        with self._lock:
            ttl = self.ttl_for(issued.lifetime)
            report_stale = False
            if issued.lifetime <= 0.0:
                # Expired on arrival (a broken IAM, or a clock running ahead when IAM sent no
                # issued_at): DIS decides whether it still works; asking IAM again for every
                # request would not give a better one. Ask again after the retry interval.
                ttl = self._retry_interval
                report_stale = not self._stale_reported
                self._stale_reported = True
            else:
                self._stale_reported = False
            # A new TTLCache per token: a TTLCache has one TTL, and tokens differ in lifetime.
            self._cache = TTLCache(maxsize=1, ttl=ttl, timer=self._clock)
            self._cache[_CACHE_KEY] = issued.value
            self._flight = None
        flight.value = issued.value
        flight.done.set()
        if report_stale and self._report is not None:
            self._report(
                "IAM token: IAM returned a token that had expired on arrival "
                f"({-issued.lifetime:.0f} s past its expires_at); using it, and asking IAM "
                f"again every {self._retry_interval:.0f} s or when DIS refuses it (check IAM's "
                "reply and this machine's clock)"
            )
        return issued.value

    def invalidate(self, token: Optional[str] = None) -> None:
        """Forget the cached token so that the next :meth:`get_token` fetches a new one.

        Args:
            token: the token the server rejected. When another thread has already replaced it with a
                newer one, nothing happens, so a burst of rejections causes a single refresh.
                ``None`` forgets whatever is cached.
        """
        with self._lock:
            if token is None or self._cache.get(_CACHE_KEY) == token:
                self._cache.clear()

    def __repr__(self) -> str:
        with self._lock:
            cached = _CACHE_KEY in self._cache
        return f"TokenCache(cached={cached}, fetches={self._fetches})"


class StaticToken:
    """A token given by the user: a fixed string, or a callable asked for every request.

    Args:
        token: the ``X-Auth-Token`` value, or a zero-argument callable returning it; no default.
    """

    def __init__(self, token: TokenValue) -> None:
        self._token = token

    @property
    def is_refreshable(self) -> bool:
        """Whether asking again may give a different token (true for a callable)."""
        return callable(self._token)

    def get_token(self) -> str:
        """Return the token (calling the callable, if one was given).

        Returns:
            The ``X-Auth-Token`` value.

        Raises:
            Exception: whatever the callable raised.
        """
        return self._token() if callable(self._token) else self._token

    def invalidate(self, token: Optional[str] = None) -> None:
        """Do nothing: a fixed token cannot be renewed, and a callable is asked again anyway.

        Args:
            token: ignored; default ``None``.
        """

    def __repr__(self) -> str:
        kind = "callable" if callable(self._token) else "str"
        return f"StaticToken({kind})"


def _encode(text: str) -> str:
    # Only A-Z a-z 0-9 - _ . ~ stay literal (DIS-API.md 10.3, 10.4): quote() with safe="" does that.
    return quote(text, safe="")


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _as_bytes(body: Union[bytes, str, None]) -> bytes:
    if body is None:
        return b""
    return body.encode("utf-8") if isinstance(body, str) else body


def _host_of(url: str) -> str:
    """Return ``host[:port]`` of ``url``, without any ``user:password@`` part."""
    netloc = urlsplit(url).netloc
    return netloc.rpartition("@")[2]


def _query_pairs(url: str) -> List[Tuple[str, str]]:
    # parse_qsl decodes "+" as a space, like the server does with what requests encodes.
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def _sdk_now() -> datetime:
    return datetime.now(timezone.utc)


class AKSKSigner:
    """Signs requests like Huawei Cloud's v3 SDKs (``SDK-HMAC-SHA256``, DIS-API.md section 10).

    Pure: :meth:`sign` takes the request's parts and returns the headers to add, it changes nothing.

    Args:
        ak: access key id.
        sk: secret access key; used only as the HMAC key.
        security_token: token of temporary credentials, sent and signed as ``X-Security-Token``;
            default ``None``, no such header.
        now: returns the current UTC time for ``X-Sdk-Date``; default the system clock.

    Raises:
        ConfigError: the AK or security token holds a character an HTTP header cannot carry
            (surrounding whitespace is removed first); the message does not show the value.
    """

    def __init__(
        self,
        ak: str,
        sk: str,
        *,
        security_token: Optional[str] = None,
        now: Callable[[], datetime] = _sdk_now,
    ) -> None:
        self.ak = header_value("ak", Secret(ak))
        self._sk = sk.encode("utf-8")
        self._security_token = (
            None
            if security_token is None
            else header_value("security_token", Secret(security_token))
        )
        self._now = now

    def __repr__(self) -> str:
        token = _redact(self._security_token)
        return f"AKSKSigner(ak={self.ak!r}, sk={_REDACTED}, security_token={token})"

    @staticmethod
    def canonical_uri(path: str) -> str:
        """Return the canonical form of a URL path: each segment re-encoded, ending with ``/``.

        Args:
            path: the path as sent, percent-encoded or not.

        Returns:
            The path with every segment decoded and encoded again (DIS-API.md §10.3).
        """
        uri = "/".join(_encode(segment) for segment in unquote(path).split("/"))
        return uri if uri.endswith("/") else uri + "/"

    @staticmethod
    def canonical_query(pairs: List[Tuple[str, str]]) -> str:
        """Return the canonical query of decoded ``(name, value)`` pairs (DIS-API.md §10.4).

        Args:
            pairs: the decoded query parameters, in any order.

        Returns:
            ``name=value`` pairs, encoded, sorted and joined by ``&``; ``""`` for no pairs.
        """
        return "&".join(f"{_encode(name)}={_encode(value)}" for name, value in sorted(pairs))

    def canonical_request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Union[bytes, str, None] = b"",
    ) -> Tuple[str, str]:
        """Return the canonical request and the signed-header list, for headers already complete.

        Args:
            method: HTTP method.
            url: full URL with the percent-encoded query as sent.
            headers: every header to sign, ``X-Sdk-Date`` and ``Host`` included; names containing
                ``_`` are skipped.
            body: the body bytes (or text, encoded as UTF-8) as sent; default ``b""``. ``None``
                or empty hashes as an empty body. An ``X-Sdk-Content-Sha256`` header replaces the
                hash of a non-empty body.

        Returns:
            ``(canonical_request, signed_headers)``.
        """
        lowered: Dict[str, str] = {}
        for name, value in headers.items():
            if "_" not in name:
                lowered[name.lower()] = value.strip()
        signed = sorted(lowered)
        content_sha = lowered.get("x-sdk-content-sha256")
        data = _as_bytes(body)
        if not data:
            payload_hash = EMPTY_SHA256
        elif content_sha is not None:
            payload_hash = content_sha
        else:
            payload_hash = _sha256_hex(data)
        parts = urlsplit(url)
        canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in signed)
        signed_list = ";".join(signed)
        canonical = "\n".join(
            (
                method.upper(),
                self.canonical_uri(parts.path or "/"),
                self.canonical_query(_query_pairs(url)),
                canonical_headers,
                signed_list,
                payload_hash,
            )
        )
        return canonical, signed_list

    @staticmethod
    def string_to_sign(canonical_request: str, sdk_date: str) -> str:
        """Return the string to sign for a canonical request and its ``X-Sdk-Date`` value.

        Args:
            canonical_request: the first value :meth:`canonical_request` returns.
            sdk_date: the ``X-Sdk-Date`` header value (``YYYYMMDDTHHMMSSZ``).

        Returns:
            The algorithm, the date and the hex SHA-256 of the canonical request, one per line.
        """
        digest = _sha256_hex(canonical_request.encode("utf-8"))
        return f"{ALGORITHM}\n{sdk_date}\n{digest}"

    def signature(self, string_to_sign: str) -> str:
        """Return the lowercase hex HMAC-SHA256 of ``string_to_sign`` keyed with the SK.

        Args:
            string_to_sign: the value :meth:`string_to_sign` returns.

        Returns:
            64 lowercase hex digits.
        """
        return hmac.new(self._sk, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()

    def sign(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Union[bytes, str, None] = b"",
    ) -> Dict[str, str]:
        """Sign a request and return the headers to add to it.

        Args:
            method: HTTP method.
            url: full URL; its host[:port] becomes ``Host`` unless ``headers`` has one.
            headers: the headers to sign (for example ``Content-Type`` and ``X-Project-Id``).
                ``X-Sdk-Date`` is added when missing, so is ``Host``; ``X-Sdk-Content-Sha256:
                UNSIGNED-PAYLOAD`` is added for a content type other than JSON or BSON.
            body: the body bytes (or text, encoded as UTF-8) as sent; default ``b""``. ``None``
                means no body.

        Returns:
            The headers to set on the request: ``Authorization``, plus those of ``X-Sdk-Date``,
            ``Host``, ``X-Sdk-Content-Sha256`` and ``X-Security-Token`` that were added.
        """
        present = {name.lower() for name in headers}
        added: Dict[str, str] = {}
        if "x-sdk-date" not in present:
            added["X-Sdk-Date"] = self._now().strftime(SDK_DATE_FORMAT)
        if "host" not in present:
            added["Host"] = _host_of(url)
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        if content_type is not None and not content_type.startswith(
            ("application/json", "application/bson")
        ):
            added["X-Sdk-Content-Sha256"] = "UNSIGNED-PAYLOAD"
        if self._security_token is not None and "x-security-token" not in present:
            added["X-Security-Token"] = self._security_token
        full = dict(headers)
        full.update(added)
        canonical, signed = self.canonical_request(method, url, full, body)
        sdk_date = next(v for k, v in full.items() if k.lower() == "x-sdk-date")
        signature = self.signature(self.string_to_sign(canonical, sdk_date))
        added["Authorization"] = (
            f"{ALGORITHM} Access={self.ak}, SignedHeaders={signed}, Signature={signature}"
        )
        return added


class LegacySigner:
    """Signs requests like the dedicated DIS SDK, ``huaweicloud-sdk-python-dis`` (DIS-API.md 11).

    It signs only ``host`` (without the port) and ``x-sdk-date``, with a key derived per day, region
    and service. Offered for endpoints or proxies that accept only the older forms.

    Args:
        ak: access key id.
        sk: secret access key.
        region: region id used in the credential scope (``cn-north-4``).
        derived: ``True`` (the default, as in the DIS SDK) for ``V11-HMAC-SHA256`` with a derived
            secret, ``False`` for the plain ``SDK-HMAC-SHA256`` form.
        now: returns the current UTC time; default the system clock.
    """

    service: Final = "dis"

    def __init__(
        self,
        ak: str,
        sk: str,
        region: str,
        *,
        derived: bool = True,
        now: Callable[[], datetime] = _sdk_now,
    ) -> None:
        self.ak = ak
        self._sk = sk
        self.region = region
        self.derived = derived
        self._now = now

    def __repr__(self) -> str:
        return (
            f"LegacySigner(ak={self.ak!r}, sk={_REDACTED}, region={self.region!r}, "
            f"derived={self.derived!r})"
        )

    @staticmethod
    def canonical_uri(path: str) -> str:
        """Return the legacy canonical path: empty and ``.`` segments dropped, ``..`` applied.

        Args:
            path: the URL path as sent.

        Returns:
            The remaining segments, each encoded, between slashes; ``"/"`` for the root.
        """
        segments: List[str] = []
        for segment in path.split("/"):
            if segment in ("", "."):
                continue
            if segment == "..":
                if segments:
                    segments.pop()
                continue
            segments.append(_encode(segment))
        return "/" + "".join(segment + "/" for segment in segments)

    @staticmethod
    def canonical_query(pairs: List[Tuple[str, str]]) -> str:
        """Return the legacy canonical query: an empty value is written as the bare name.

        Args:
            pairs: the decoded query parameters, in any order.

        Returns:
            The encoded parameters, sorted and joined by ``&``; ``""`` for no pairs.
        """
        items = sorted(
            _encode(name) if value == "" else f"{_encode(name)}={_encode(value)}"
            for name, value in pairs
        )
        return "&".join(items)

    def derived_secret(self, day: str) -> str:
        """Return the secret of the derived form for a day, as lowercase hex.

        Args:
            day: the UTC date of ``X-Sdk-Date``, as ``yyyymmdd``.

        Returns:
            64 lowercase hex digits, derived from the AK, the SK, the day and the region.
        """
        key = hmac.new(self.ak.encode("utf-8"), self._sk.encode("utf-8"), hashlib.sha256).digest()
        info = f"{day}/{self.region}/{self.service}".encode() + b"\x01"
        return hmac.new(key, info, hashlib.sha256).hexdigest()

    def sign(
        self,
        method: str,
        url: str,
        body: Union[bytes, str, None] = b"",
        *,
        sdk_date: Optional[str] = None,
    ) -> Dict[str, str]:
        """Sign a request and return the ``X-Sdk-Date`` and ``Authorization`` headers to add.

        Args:
            method: HTTP method.
            url: full URL; the host is signed without its port.
            body: the body bytes (or text, encoded as UTF-8) as sent; default ``b""``. ``None``
                means no body.
            sdk_date: the ``X-Sdk-Date`` value to use (``YYYYMMDDTHHMMSSZ``); default ``None``,
                which uses the current time.

        Returns:
            ``{"X-Sdk-Date": ..., "Authorization": ...}``.
        """
        date = sdk_date if sdk_date is not None else self._now().strftime(SDK_DATE_FORMAT)
        day = date[:8]
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        canonical = "\n".join(
            (
                method.upper(),
                self.canonical_uri(parts.path or "/"),
                self.canonical_query(_query_pairs(url)),
                f"host:{host}\nx-sdk-date:{date}\n",
                "host;x-sdk-date",
                _sha256_hex(_as_bytes(body)),
            )
        )
        scope = f"{day}/{self.region}/{self.service}/sdk_request"
        algorithm = DERIVED_ALGORITHM if self.derived else ALGORITHM
        string_to_sign = "\n".join((algorithm, date, scope, _sha256_hex(canonical.encode("utf-8"))))
        secret = self.derived_secret(day) if self.derived else self._sk
        key = ("SDK" + secret).encode("utf-8")
        for part in (day, self.region, self.service, "sdk_request"):
            key = _hmac(key, part)
        signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        authorization = (
            f"{algorithm} Credential={self.ak}/{scope}, SignedHeaders=host;x-sdk-date, "
            f"Signature={signature}"
        )
        return {"X-Sdk-Date": date, "Authorization": authorization}


#: Headers :class:`AKSKAuth` signs when present. The others (User-Agent, Accept-Encoding,
#: Content-Length...) may be rewritten by proxies or the HTTP stack, so they stay unsigned.
SIGNED_HEADERS: Final = ("Content-Type", "X-Project-Id")


class TokenAuth(AuthBase):
    """``requests`` auth that sends the token of a :class:`TokenSource` as ``X-Auth-Token``.

    Every token is added to ``secrets`` (masked in diagnostics from then on) and checked with
    :func:`header_value` before it is sent.

    Args:
        source: a :class:`TokenCache`, a :class:`StaticToken` or anything with the same two methods.
        secrets: where tokens obtained at run time are registered for redaction; default a new,
            private :class:`~dis_logging._report.SecretSet`.
    """

    def __init__(self, source: TokenSource, secrets: Optional[SecretSet] = None) -> None:
        self.source = source
        self.secrets = secrets if secrets is not None else SecretSet()

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        """Set ``X-Auth-Token`` on ``r`` and return it.

        Raises:
            ConfigError: the token holds a character an HTTP header cannot carry (the message does
                not show it).
            Exception: whatever the token source raised.
        """
        r.headers["X-Auth-Token"] = header_value("token", self._registered(self.source.get_token()))
        return r

    def _registered(self, token: str) -> Secret[str]:
        self.secrets.add(token)
        return Secret(token)

    def __repr__(self) -> str:
        return f"TokenAuth({self.source!r})"


class AKSKAuth(AuthBase):
    """``requests`` auth that signs each request with an :class:`AKSKSigner`.

    It signs ``Host``, ``X-Sdk-Date``, and ``Content-Type``, ``X-Project-Id`` and
    ``X-Security-Token`` when present, and sets ``Host`` explicitly so that the signed value is the
    one on the wire.

    Whatever ``X-Security-Token`` the signer adds is registered in ``secrets``, so temporary
    credentials obtained at run time are masked like the configured ones.

    Args:
        signer: the signer holding the AK/SK.
        secrets: where security tokens are registered for redaction; default a new, private
            :class:`~dis_logging._report.SecretSet`.
    """

    def __init__(self, signer: AKSKSigner, secrets: Optional[SecretSet] = None) -> None:
        self.signer = signer
        self.secrets = secrets if secrets is not None else SecretSet()

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        """Add the signature headers to ``r`` and return it."""
        to_sign = {name: r.headers[name] for name in SIGNED_HEADERS if name in r.headers}
        body = r.body if isinstance(r.body, (bytes, str)) else None
        r.headers.update(self.signer.sign(r.method or "GET", r.url or "", to_sign, body))
        self.secrets.add(r.headers.get("X-Security-Token"))
        return r

    def __repr__(self) -> str:
        return f"AKSKAuth({self.signer!r})"


@dataclass(frozen=True)
class TemporaryCredentials:
    """One set of temporary AK/SK credentials, as the ECS/CCE metadata service hands it out.

    The three secrets belong together (DIS-API.md section 13): a request is signed with this
    ``ak``/``sk`` and carries this ``security_token``.

    Args:
        ak: the temporary access key id.
        sk: its secret key; never shown by repr.
        security_token: sent and signed as ``X-Security-Token``; never shown by repr.
        expires_at: when the set stops working, in seconds since the epoch (UTC).
    """

    ak: str
    sk: str = field(repr=False)
    security_token: str = field(repr=False)
    expires_at: float


def parse_metadata_credentials(body: object) -> TemporaryCredentials:
    """Read the metadata service's ``securitykey`` reply (DIS-API.md section 13).

    Args:
        body: the decoded JSON body,
            ``{"credential": {"access", "secret", "securitytoken", "expires_at"}}``.

    Returns:
        The set, with ``expires_at`` as epoch seconds.

    Raises:
        ValueError: a value is missing, empty, not a string, or ``expires_at`` is unreadable.
            The message names the field, never its value.
    """
    credential = body.get("credential") if isinstance(body, dict) else None
    if not isinstance(credential, dict):
        raise ValueError("the metadata reply has no credential object")
    values: Dict[str, str] = {}
    for name in ("access", "secret", "securitytoken", "expires_at"):
        value = credential.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"the metadata reply has no credential.{name}")
        values[name] = value.strip()
    try:
        expires_at = _parse_iam_time(values["expires_at"]).timestamp()
    except ValueError:
        raise ValueError("the metadata reply has an unreadable credential.expires_at") from None
    return TemporaryCredentials(
        values["access"], values["secret"], values["securitytoken"], expires_at
    )


class TemporaryCredentialCache:
    """Holds the current temporary credentials and replaces them before they expire.

    The set is fetched on first use and again once less than the refresh margin (the smaller of
    ``refresh_margin`` and ``refresh_fraction`` of its lifetime) is left. One thread fetches at a
    time; while it does, other threads keep using the current set if it is still valid, and wait
    for the fetch only when there is none.

    A refresh that fails keeps the current set in use until its ``expires_at``, and ``report`` is
    called once for the whole run of failures (again only after a success); the next attempt comes
    after ``retry_interval`` or a quarter of the time left, whichever is shorter. Once the set has
    expired, a failing fetch raises to the caller. A set that has already expired when it arrives
    is used (DIS judges it by its own clock), reported once, and replaced only after
    ``retry_interval`` (or at once by :meth:`invalidate`), not fetched again for every request.

    Args:
        fetch: performs the metadata request and returns a set; may raise. Never called with the
            lock held.
        clock: wall-clock seconds since the epoch, compared with ``expires_at``; default
            :func:`time.time`. Tests pass a fake.
        report: called with a one-line message, without secrets, when a refresh fails and the
            current set is kept, or a set arrives already expired; default ``None``, no report.
        refresh_margin: seconds before expiry at most when a new set is fetched; default
            :data:`TEMPORARY_REFRESH_MARGIN` (600.0). ``0`` waits for the expiry.
        refresh_fraction: fraction of the lifetime at most; default
            :data:`TEMPORARY_REFRESH_FRACTION` (0.2).
        retry_interval: longest wait in seconds before retrying a failed refresh; default
            :data:`TEMPORARY_RETRY_INTERVAL` (30.0).
        wait_limit: returns how long the calling thread may wait for another thread's fetch, in
            seconds, or ``None`` for as long as it takes; default ``None`` (no limit).
    """

    def __init__(
        self,
        fetch: Callable[[], TemporaryCredentials],
        *,
        clock: Callable[[], float] = time.time,
        report: Optional[Callable[[str], None]] = None,
        refresh_margin: float = TEMPORARY_REFRESH_MARGIN,
        refresh_fraction: float = TEMPORARY_REFRESH_FRACTION,
        retry_interval: float = TEMPORARY_RETRY_INTERVAL,
        wait_limit: Optional[Callable[[], Optional[float]]] = None,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._report = report
        self._refresh_margin = refresh_margin
        self._refresh_fraction = refresh_fraction
        self._retry_interval = retry_interval
        self._wait_limit = wait_limit
        self._lock = threading.Lock()
        self._current: Optional[TemporaryCredentials] = None
        self._refresh_at = 0.0  # wall-clock time from which a new set is fetched
        self._flight: Optional[_CredentialFlight] = None
        self._failing = False  # a refresh failed and was reported; cleared by a success
        self._stale_reported = False  # a set expired on arrival was reported; cleared by a good one
        self._fetches = 0

    @property
    def fetch_count(self) -> int:
        """How many times ``fetch`` has been called."""
        return self._fetches

    def __repr__(self) -> str:
        current = self._current
        held = "none" if current is None else f"ak={current.ak!r}"
        return f"TemporaryCredentialCache({held}, fetches={self._fetches})"

    def get(self) -> TemporaryCredentials:
        """Return the set to sign with now, fetching a new one when it is due.

        Returns:
            A set that has not expired by this cache's clock, or the last one while a refresh
            is failing.

        Raises:
            Exception: whatever ``fetch`` raised, when there is no unexpired set to fall back on.
        """
        with self._lock:
            now = self._clock()
            current = self._current
            if current is not None and now < self._refresh_at:
                return current
            usable = current if current is not None and now < current.expires_at else None
            flight = self._flight
            if flight is not None:
                if usable is not None:
                    return usable  # another thread is fetching; no need to wait for it
                leader = False
            else:
                flight = self._flight = _CredentialFlight()
                leader = True
        if not leader:
            return flight.wait(self._wait_limit() if self._wait_limit is not None else None)
        try:
            self._fetches += 1
            fresh = self._fetch()
        except Exception as exc:  # noqa: BLE001 - any fetch error: keep the current set or re-raise
            return self._after_failure(flight, usable, exc)
        except BaseException as exc:
            with self._lock:
                self._flight = None
            flight.finish(None, exc)
            raise
        stale_for = 0.0
        with self._lock:
            now = self._clock()
            lifetime = max(fresh.expires_at - now, 0.0)
            margin = min(self._refresh_margin, lifetime * self._refresh_fraction)
            self._current = fresh
            self._refresh_at = now + lifetime - margin
            if lifetime <= 0.0:
                # Expired on arrival by this machine's clock (a clock running ahead, or a service
                # handing out old sets): DIS decides whether it still works, and fetching again for
                # every request would not give a better one. Ask again after the retry interval.
                self._refresh_at = now + self._retry_interval
                stale_for = now - fresh.expires_at
                report_stale = not self._stale_reported
                self._stale_reported = True
            else:
                report_stale = False
                self._stale_reported = False
            self._failing = False
            self._flight = None
        flight.finish(fresh, None)
        if report_stale and self._report is not None:
            self._report(
                f"temporary credentials: the metadata service returned a set that expired "
                f"{stale_for:.0f} s ago by this machine's clock; using it, and asking again every "
                f"{self._retry_interval:.0f} s (check the clock)"
            )
        return fresh

    def _after_failure(
        self, flight: _CredentialFlight, usable: Optional[TemporaryCredentials], error: Exception
    ) -> TemporaryCredentials:
        """Keep ``usable`` after a failed refresh (reporting once), or raise ``error``."""
        with self._lock:
            self._flight = None
            first_failure = not self._failing
            if usable is not None:
                now = self._clock()
                wait = min(self._retry_interval, max((usable.expires_at - now) / 4.0, 0.0))
                self._refresh_at = now + wait
                self._failing = True
        if usable is None:
            flight.finish(None, error)
            raise error
        flight.finish(usable, None)
        if first_failure and self._report is not None:
            left = max(usable.expires_at - self._clock(), 0.0)
            self._report(
                f"temporary credentials: refresh failed ({type(error).__name__}: {error}); "
                f"keeping the current set, which expires in {left:.0f} s"
            )
        return usable

    def invalidate(self, ak: Optional[str] = None) -> None:
        """Fetch a new set on the next :meth:`get`, because DIS rejected ``ak``.

        Args:
            ak: the access key of the rejected set; when the cache already holds another one,
                nothing happens. ``None`` applies to whatever is held.
        """
        with self._lock:
            current = self._current
            if current is not None and (ak is None or current.ak == ak):
                self._refresh_at = 0.0


class _CredentialFlight:
    """One metadata fetch in progress; its outcome is handed to the threads waiting on it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Optional[TemporaryCredentials] = None
        self.error: Optional[BaseException] = None

    def finish(self, value: Optional[TemporaryCredentials], error: Optional[BaseException]) -> None:
        self.value, self.error = value, error
        self.done.set()

    def wait(self, timeout: Optional[float]) -> TemporaryCredentials:
        if not self.done.wait(timeout):
            raise TransportError(
                "temporary credentials: another thread's fetch did not end within the deadline"
            )
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


class TemporaryAKSKAuth(AuthBase):
    """``requests`` auth that signs with the current set of a :class:`TemporaryCredentialCache`.

    Each request is signed like :class:`AKSKAuth` does, with the set's AK/SK, and carries its
    security token as a signed ``X-Security-Token``. The secret key and security token of every
    set used are registered in ``secrets`` for redaction.

    Args:
        source: the cache that fetches and refreshes the sets.
        secrets: where the secrets are registered; default a new, private
            :class:`~dis_logging._report.SecretSet`.
    """

    def __init__(
        self, source: TemporaryCredentialCache, secrets: Optional[SecretSet] = None
    ) -> None:
        self.source = source
        self.secrets = secrets if secrets is not None else SecretSet()
        self._signed_with: Tuple[Optional[TemporaryCredentials], Optional[AKSKAuth]] = (None, None)

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        """Sign ``r`` with the current set and return it.

        Raises:
            Exception: whatever fetching the set raised.
        """
        credentials = self.source.get()
        held, auth = self._signed_with
        if held is not credentials or auth is None:
            self.secrets.add(credentials.sk)
            self.secrets.add(credentials.security_token)
            signer = AKSKSigner(
                credentials.ak, credentials.sk, security_token=credentials.security_token
            )
            auth = AKSKAuth(signer, self.secrets)
            self._signed_with = (credentials, auth)
        return auth(r)

    def __repr__(self) -> str:
        return f"TemporaryAKSKAuth({self.source!r})"
