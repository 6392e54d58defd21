"""Validation of the base URLs the library talks to, shared by the configuration and the client.

Both :mod:`dis_logging.config` (handler and command-line settings) and
:mod:`dis_logging.client` (``DISClient`` built directly) check endpoints the same way, so a URL
refused in one place is refused in the other.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import urlsplit

from dis_logging.errors import ConfigError

__all__ = [
    "METADATA_HOST",
    "METADATA_SECURITY_KEY_PATH",
    "check_base_url",
    "check_metadata_endpoint",
    "is_loopback",
]

#: The link-local address of the ECS/CCE metadata service (DIS-API.md §13).
METADATA_HOST: Final = "169.254.169.254"
#: Its base URL: plain HTTP, as the service offers nothing else (DIS-API.md §13).
DEFAULT_METADATA_ENDPOINT: Final = f"http://{METADATA_HOST}"
#: Path of the temporary credentials under the metadata service's base URL (DIS-API.md §13).
METADATA_SECURITY_KEY_PATH: Final = "/openstack/latest/securitykey"


def is_loopback(host: str) -> bool:
    """Tell whether ``host`` names this machine (``localhost``, ``127.0.0.0/8``, ``::1``).

    Args:
        host: a host name or IP address, without brackets or port.

    Returns:
        ``True`` for loopback hosts; ``False`` for every other name, including names that may
        resolve to a loopback address (no DNS lookup is made).
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: The first path segment of an API path (DIS ``/v2/{project_id}/...``, IAM ``/v3/auth/...``).
_API_VERSION_SEGMENT: Final = re.compile(r"[vV][0-9]+(\.[0-9]+)?")


#: ASCII characters a host name may hold here: DNS labels (letters, digits, hyphen, dot; the
#: underscore of some internal names), and the colon and percent sign of an IPv6 address with a
#: zone. Other characters (non-ASCII letters of an internationalised name) are left to IDNA.
_HOST_CHAR: Final = re.compile(r"[A-Za-z0-9._:%-]").fullmatch


def check_base_url(field: str, value: object, *, allow_http: bool) -> str:
    """Check a DIS or IAM base URL and return it without surrounding blanks or a trailing ``/``.

    Args:
        field: the setting's name, used in the error.
        value: the URL: ``https://host[:port][/prefix]``; ``http://`` only for loopback hosts.
        allow_http: accept ``http://`` to any host (an explicit opt-in; the traffic is in clear).

    Returns:
        The URL, stripped of blanks and of a trailing ``/``.

    Raises:
        ConfigError: not a string, spaces or control characters inside the URL, not an http(s)
            URL with a host, a malformed (not repeated) or zero port, user information, a query
            or fragment (even an empty one), an ASCII character no host name holds (a
            backslash, say), a path that starts with an API version (``/v2``, copied from a
            request URL), or ``http://`` to a remote host without ``allow_http``. A value that
            may hold a password (``user:pw@host``) is never repeated.
    """
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(field, "must be a URL such as https://dis.cn-north-4.myhuaweicloud.com")
    text = value.strip()
    shown = "the given value" if "@" in text else repr(text)
    if any(char.isspace() or not char.isprintable() for char in text):
        # urlsplit drops tabs and newlines silently (the host would change) and HTTP cannot send
        # the others: every request would fail later.
        raise ConfigError(field, f"must not contain spaces or control characters, got {shown}")
    try:
        parts = urlsplit(text)
    except ValueError:
        raise ConfigError(field, f"is not a valid URL: {shown}") from None
    try:
        port = parts.port  # raises ValueError on a malformed port
    except ValueError:
        # Not repeated: "https://admin:pw" (the host forgotten) puts a password where the port goes.
        raise ConfigError(
            field, "has a port that is not a number from 1 to 65535 (the value is not shown)"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(field, f"must be an http:// or https:// URL with a host, got {shown}")
    if "@" in parts.netloc:
        raise ConfigError(field, "must not contain user information (credentials go elsewhere)")
    odd = next((char for char in parts.hostname if char.isascii() and not _HOST_CHAR(char)), None)
    if odd is not None:
        # "https://dis.cn-north-4.myhuaweicloud.com\.evil.com" reads as one host here but not
        # everywhere (browsers take the backslash for a slash); no DNS name holds such a
        # character, so every request would fail at the name look-up.
        raise ConfigError(field, f"has {odd!r} in its host name, got {shown}")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        # An empty one too: "https://host#" + "/v2/..." would send every request to "/".
        raise ConfigError(field, f"must not have a query or fragment, got {shown}")
    if port == 0:
        raise ConfigError(field, "port 0 is not a real port")
    first_segment = next((segment for segment in parts.path.split("/") if segment), "")
    if _API_VERSION_SEGMENT.fullmatch(first_segment):
        # Copied from the API reference: every request would add its own /v2/... (or /v3/...)
        # after it and get 404. A gateway prefix ("/dis") does not look like a version.
        raise ConfigError(
            field,
            f"is the service's base URL, without the API path: use "
            f"'{parts.scheme}://{parts.netloc}' (each request adds /{first_segment}/...)",
        )
    if parts.scheme == "http" and not allow_http and not is_loopback(parts.hostname):
        raise ConfigError(
            field,
            f"http:// is only allowed for loopback hosts, got {parts.hostname!r}; use https:// "
            "or allow_insecure_http=True",
        )
    return text.rstrip("/")


def check_metadata_endpoint(value: object) -> str:
    """Check the base URL of the metadata service that hands out temporary credentials.

    Args:
        value: ``http://169.254.169.254`` (the documented address), ``http://`` to a loopback
            host (a local stand-in such as the emulator), or any ``https://`` URL. The full URL
            of the credentials, ending in :data:`METADATA_SECURITY_KEY_PATH`, is accepted too.

    Returns:
        The base URL, stripped of blanks, of a trailing ``/`` and of a trailing
        :data:`METADATA_SECURITY_KEY_PATH`.

    Raises:
        ConfigError: what :func:`check_base_url` refuses, and ``http://`` to any other host: the
            reply carries a secret key, so it never crosses a network in clear
            (``allow_insecure_http`` does not change that).
    """
    try:
        host = urlsplit(value.strip()).hostname if isinstance(value, str) else None
    except ValueError:  # check_base_url reports the malformed URL
        host = None
    if (
        isinstance(value, str)
        and value.strip().lower().startswith("http://")
        and host is not None
        and host != METADATA_HOST
        and not is_loopback(host)
    ):
        raise ConfigError(
            "metadata_endpoint",
            f"http:// is only allowed for {METADATA_HOST} and loopback hosts, got {host!r}: the "
            "reply holds a secret key; use https://",
        )
    url = check_base_url("metadata_endpoint", value, allow_http=host == METADATA_HOST)
    if url.endswith(METADATA_SECURITY_KEY_PATH):
        url = url[: -len(METADATA_SECURITY_KEY_PATH)]
    return url.rstrip("/")
