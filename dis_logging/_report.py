"""Internal diagnostics channel: rate-limited messages to stderr or a user callable.

The handler cannot report its own problems through :mod:`logging` (the record would come back to the
handler that is failing) nor through :mod:`warnings` (a warning filter set to ``error`` would
turn a background hiccup into an exception in whatever thread happens to run). :class:`Reporter`
writes plain lines instead, at most one per ``(kind, status/code)`` key and window, and says how
many repeats it held back.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections import OrderedDict
from typing import (
    Callable,
    Dict,
    Final,
    Hashable,
    Iterable,
    Iterator,
    Optional,
    Protocol,
    Tuple,
)

from dis_logging import errors

__all__ = ["DiagnosticSink", "Reporter", "ReporterLike", "SecretSet", "error_key", "redact"]

#: seconds during which repeats of one kind of problem are counted instead of written.
DEFAULT_INTERVAL: Final[float] = 60.0
#: every line starts with this, so it can be grepped for in a service's stderr.
PREFIX: Final = "dis-logging: "

DiagnosticSink = Callable[[str], None]


class ReporterLike(Protocol):
    """What the flusher and the handler need from a diagnostics channel."""

    def report(self, key: Hashable, message: str) -> bool:
        """Write ``message`` unless a message with the same key was written within the window.

        Args:
            key: identifies the kind of problem; messages with equal keys are rate-limited together.
            message: one line of text.

        Returns:
            ``True`` when the line was written, ``False`` when it was held back as a repeat.
        """
        ...  # pragma: no cover - protocol


def error_key(exc: BaseException) -> Tuple[str, object]:
    """Return the rate-limiting key of an exception: its type name and its status or error code.

    Args:
        exc: any exception; a :class:`~dis_logging.errors.DISError` contributes ``code`` or
            ``status``.

    Returns:
        ``(type name, code or status or None)``.
    """
    detail = getattr(exc, "code", None) or getattr(exc, "status", None)
    return (type(exc).__name__, detail)


#: Tokens obtained at run time (from a callable, IAM or a metadata service) that a
#: :class:`SecretSet` keeps besides the configured secrets; older ones are forgotten first.
MAX_DYNAMIC_SECRETS: Final = 16
#: Pieces of a secret shorter than this are not masked on their own (too likely to match prose).
MIN_SECRET_PIECE: Final = 8
#: Secrets shorter than this are masked only where they stand alone, not inside a longer word
#: (see :func:`redact`). Huawei Cloud AKs have 20 characters, SKs 40, IAM passwords at least 6.
MIN_SECRET_ANYWHERE: Final = 4


def secret_variants(secret: str) -> Tuple[str, ...]:
    """Return the forms in which ``secret`` may show up in text, longest first.

    Besides the value itself: without surrounding whitespace, escaped as ``repr`` or
    ``http.client`` would quote it (``\\n`` for a newline), escaped as inside a JSON string (with
    and without ``\\uXXXX`` for non-ASCII), and each line of a value wrapped over
    several lines (a security token copied from a console), as long as the line has at least
    :data:`MIN_SECRET_PIECE` characters.

    Args:
        secret: the secret; an empty string gives no variant.

    Returns:
        The distinct non-empty variants, longest first so that a longer match wins.
    """
    if not secret:
        return ()
    forms = {secret, secret.strip()}
    forms.add(secret.encode("unicode_escape").decode("ascii"))
    # As a JSON string holds it (the IAM login body carries the password so): a server that
    # quotes the request in its error text quotes this form.
    forms.add(json.dumps(secret)[1:-1])
    forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    lines = [line.strip() for line in secret.splitlines()]
    if len(lines) > 1:
        forms.update(line for line in lines if len(line) >= MIN_SECRET_PIECE)
    forms.discard("")
    return tuple(sorted(forms, key=len, reverse=True))


class SecretSet:
    """The strings to mask in every text that leaves the package; thread-safe and growing.

    Configured secrets (SK, password, security token, a static token) are given at construction;
    tokens obtained later (from a token callable, from IAM, a security token of temporary
    credentials) are added with :meth:`add` as they are first used, and the
    :data:`MAX_DYNAMIC_SECRETS` most recent of those are kept. Iterating gives a snapshot of every
    variant (see :func:`secret_variants`), longest first. The repr shows only a count.

    Args:
        secrets: the configured secrets; empty strings and ``None`` are ignored.
    """

    def __init__(self, secrets: Iterable[Optional[str]] = ()) -> None:
        self._lock = threading.Lock()
        self._static = tuple(s for s in secrets if isinstance(s, str) and s)
        self._dynamic: OrderedDict[str, None] = OrderedDict()
        self._variants = self._build()

    def _build(self) -> Tuple[str, ...]:
        forms = {v for s in (*self._static, *self._dynamic) for v in secret_variants(s)}
        return tuple(sorted(forms, key=len, reverse=True))

    def add(self, secret: Optional[str]) -> None:
        """Mask ``secret`` from now on; ``None``, ``""`` and known values cost a dict lookup.

        Args:
            secret: a token or key obtained at run time.
        """
        if not secret or secret in self._dynamic or secret in self._static:
            return
        with self._lock:
            self._dynamic[secret] = None
            while len(self._dynamic) > MAX_DYNAMIC_SECRETS:
                self._dynamic.popitem(last=False)
            self._variants = self._build()

    def __iter__(self) -> Iterator[str]:
        return iter(self._variants)

    def __contains__(self, text: object) -> bool:
        return text in self._variants

    def __len__(self) -> int:
        return len(self._static) + len(self._dynamic)

    def __repr__(self) -> str:
        return f"SecretSet({len(self)} secrets)"


def _standalone(secret: str) -> re.Pattern[str]:
    """A pattern matching ``secret`` where no letter, digit or ``_`` touches it."""
    return re.compile(rf"(?<!\w){re.escape(secret)}(?!\w)")


def redact(text: str, secrets: Iterable[str], mask: str = "***") -> str:
    """Replace every occurrence of each secret in ``text`` by ``mask``.

    A secret shorter than :data:`MIN_SECRET_ANYWHERE` characters is replaced only where it
    stands alone (no letter, digit or ``_`` right before or after it): a one-letter test token
    ``"x"`` is masked in ``token=x`` and ``"x"`` but leaves ``TokenExpiredError`` readable. No
    real key, password or token is that short.

    Args:
        text: the message to clean.
        secrets: the strings that must not appear; empty strings are ignored.
        mask: what replaces each occurrence; default ``"***"``.

    Returns:
        ``text`` without any of the secrets.
    """
    for secret in secrets:
        if secret and secret in text:
            if len(secret) >= MIN_SECRET_ANYWHERE:
                text = text.replace(secret, mask)
            else:
                text = _standalone(secret).sub(mask, text)
    return text


def printable(text: str) -> str:
    """Return ``text`` with each character :meth:`str.isprintable` refuses written as its escape.

    Diagnostics quote what servers send (status lines, error messages): an escape sequence or a
    bidirectional override there must not move a terminal's cursor, recolour it or reorder the
    line. ``"\x1b[2J"`` becomes ``"\\x1b[2J"``, U+202E ``"\\u202e"``.

    Args:
        text: one line of diagnostics.

    Returns:
        The text, unchanged when every character is printable.
    """
    return errors._escape_unprintable(text)


def _is_call_failure(key: Hashable) -> bool:
    """Whether ``key`` is :func:`error_key` of a :class:`~dis_logging.errors.DISError`."""
    if not isinstance(key, tuple) or not key or not isinstance(key[0], str):
        return False
    cls = getattr(errors, key[0], None)
    return isinstance(cls, type) and issubclass(cls, errors.DISError)


class Reporter:
    """Rate-limited writer of diagnostic lines; never uses :mod:`logging` or :mod:`warnings`.

    Args:
        sink: a callable that receives each finished line (without a trailing newline), or
            ``None`` (the default) to write to :data:`sys.stderr` as it is at the time of writing.
            A sink that raises is bypassed for that line, which then goes to stderr.
        interval: seconds during which further messages with the same key are only counted;
            default :data:`DEFAULT_INTERVAL` (60.0). ``0`` writes every message.
        secrets: strings to mask as ``***`` in every line, in case one slipped into an error text;
            default none. Empty strings are ignored. A :class:`SecretSet` is kept as it is, so
            tokens added to it later are masked too.
        clock: monotonic time source in seconds; default :func:`time.monotonic`.
        hint: the next step to append to reports of failed DIS or IAM calls (keys made by
            :func:`error_key` from a :class:`~dis_logging.errors.DISError`) that do not already
            name ``dis-logging check``; default ``""``, nothing appended.

    Attributes:
        lost_lines: how many lines could be written neither to the sink nor to stderr.
    """

    def __init__(
        self,
        sink: Optional[DiagnosticSink] = None,
        *,
        interval: float = DEFAULT_INTERVAL,
        secrets: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
        hint: str = "",
    ) -> None:
        self._sink = sink
        self._hint = hint
        self._interval = interval
        self._secrets = secrets if isinstance(secrets, SecretSet) else SecretSet(secrets)
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (time the last line was written, repeats suppressed since then)
        self._windows: Dict[Hashable, Tuple[float, int]] = {}
        #: lines that could not be written anywhere (stderr closed or missing).
        self.lost_lines = 0

    def __repr__(self) -> str:
        target = "stderr" if self._sink is None else "callable"
        return f"Reporter(target={target}, interval={self._interval!r})"

    def report(self, key: Hashable, message: str) -> bool:
        """Write ``message`` unless the same key was written less than ``interval`` seconds ago.

        Args:
            key: what makes two messages "the same problem", usually :func:`error_key`.
            message: one line of text, without secrets (they are masked anyway). When earlier
                repeats were held back, their count is appended.

        Returns:
            ``True`` when the line was written, ``False`` when it was counted as a repeat.
        """
        now = self._clock()
        with self._lock:
            last = self._windows.get(key)
            if last is not None and now - last[0] < self._interval:
                self._windows[key] = (last[0], last[1] + 1)
                return False
            suppressed = last[1] if last is not None else 0
            self._windows[key] = (now, 0)
        if self._hint and _is_call_failure(key) and "dis-logging check" not in message:
            message = f"{message}; {self._hint}"
        if suppressed:
            message = f"{message} ({suppressed} similar message(s) suppressed in the last window)"
        self._write(redact(PREFIX + message, self._secrets))
        return True

    def report_now(self, message: str) -> None:
        """Write ``message`` without rate limiting (one-off events such as records left at close).

        Args:
            message: one line of text.
        """
        self._write(redact(PREFIX + message, self._secrets))

    def _write(self, line: str) -> None:
        """Send ``line`` to the sink, falling back to stderr, and count it as lost if both fail."""
        line = printable(line)
        if self._sink is not None:
            try:
                self._sink(line)
                return
            except Exception:  # noqa: BLE001 - a user's sink must not break the handler
                line = f"{line} (diagnostics callable failed)"
        stream = sys.stderr
        if stream is None:  # pythonw, or a daemon that closed its standard streams
            self.lost_lines += 1
            return
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError, AttributeError, UnicodeError):
            # stderr closed at interpreter exit, or replaced by something that cannot take text:
            # there is nowhere left to report to.
            self.lost_lines += 1
