"""Every setting of :class:`~dis_logging.handler.DISHandler`: defaults, environment, validation.

:meth:`HandlerConfig.from_kwargs` is the single entry point. It takes the handler's keywords
exactly as ``logging.config.dictConfig``, ``fileConfig`` or Django's ``LOGGING`` deliver them
(numbers and booleans may arrive as strings), fills gaps from the environment, checks everything
and returns a frozen :class:`HandlerConfig`. Any problem raises
:class:`~dis_logging.errors.ConfigError` naming the setting, in the caller's thread, before a
thread is started or a socket opened.

Each setting is looked up on its own, first match wins (so a project id from the credentials file
works with keys from the environment, and a keyword or command-line flag completes the rest):

* endpoint: the keyword; then ``DIS_LOGGING_ENDPOINT``; then
  ``HUAWEICLOUD_SDK_REGION_DIS_<REGION>`` (first URL of a comma-separated list); then
  ``https://dis.<region>.myhuaweicloud.com``;
* stream: ``stream_name``, then ``DIS_LOGGING_STREAM``;
* region: ``region``, then ``DIS_LOGGING_REGION``;
* spool directory: ``spool_dir``, then ``DIS_LOGGING_SPOOL_DIR``;
* project: ``project_id``, then ``HUAWEICLOUD_SDK_PROJECT_ID``, then the credentials file;
* switch: ``enabled``, then ``DIS_LOGGING_ENABLED``, else on. Off, nothing below is read or
  checked (no stream, endpoint or credentials needed);
* credentials: exactly one kind, ``ak``/``sk`` [+ ``security_token``],
  ``username``/``password``/``domain_name``, or ``token``. The kind comes from the keywords when
  they name one; else from the environment (``DIS_LOGGING_USERNAME``/``DIS_LOGGING_PASSWORD``
  first, then ``HUAWEICLOUD_SDK_AK``/``HUAWEICLOUD_SDK_SK``); else from the ``[basic]`` section of
  the INI file named by ``HUAWEICLOUD_SDK_CREDENTIALS_FILE`` (default
  ``~/.huaweicloud/credentials``). Each field of that kind is then the keyword, else its
  environment variable (``HUAWEICLOUD_SDK_AK``, ``HUAWEICLOUD_SDK_SK``, ``DIS_LOGGING_USERNAME``,
  ``DIS_LOGGING_PASSWORD``, ``DIS_LOGGING_DOMAIN_NAME``), else the file (keys only); a
  ``security_token`` that is not a keyword is read from where ``sk`` came from
  (``HUAWEICLOUD_SDK_SECURITY_TOKEN`` or the file);
* temporary credentials of the instance's IAM agency: ``metadata_credentials``, then
  ``DIS_LOGGING_METADATA_CREDENTIALS``; their service at ``metadata_endpoint``, then
  ``DIS_LOGGING_METADATA_ENDPOINT``, then ``http://169.254.169.254`` (DIS-API.md §13). When on,
  no other credentials may be given and none are read from the environment or the file;
* IAM endpoint (password tokens only): ``iam_endpoint``, ``HUAWEICLOUD_SDK_IAM_ENDPOINT``, the
  credentials file, then :func:`default_iam_endpoint` (``https://iam.<region>.myhuaweicloud.com``
  for a Huawei Cloud DIS endpoint, else the DIS endpoint itself: the emulator and private gateways
  serve both). :class:`~dis_logging.client.DISClient` and the command line derive it the same way.
"""

from __future__ import annotations

import configparser
import dataclasses
import difflib
import functools
import importlib
import inspect
import logging
import math
import os
import re
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    Final,
    FrozenSet,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypedDict,
    TypeVar,
    Union,
    cast,
)
from urllib.parse import urlsplit

from dis_logging._urls import DEFAULT_METADATA_ENDPOINT, check_base_url, check_metadata_endpoint
from dis_logging.errors import ConfigError

__all__ = [
    "BoolSetting",
    "Connection",
    "FailureHook",
    "FloatSetting",
    "HandlerConfig",
    "HandlerSettings",
    "IntSetting",
    "LevelSetting",
    "PartitionKey",
    "TokenSetting",
    "check_keywords",
    "default_iam_endpoint",
    "import_object",
    "is_enabled",
    "resolve_connection",
    "unknown_keywords_error",
]

#: DIS stream names: 1-64 characters of letters, digits, ``_`` and ``-`` (DIS-API.md §5).
STREAM_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Region ids look like ``cn-north-4`` (DIS-API.md §1).
REGION_PATTERN: Final = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
#: A partition id: ``shardId-`` and the index padded to ten digits, or the bare index (DIS-API.md
#: §1). Anything else fails every PutRecords with DIS.4201.
PARTITION_ID_PATTERN: Final = re.compile(r"(?:shardId-)?[0-9]{1,10}")
#: Total record bytes per PutRecords request: 1 MB on COMMON streams (DIS-API.md §8).
DEFAULT_MAX_BATCH_BYTES: Final = 1_000_000
#: ... and 5 MB on ADVANCED streams, the most any request may carry (DIS-API.md §8).
MAX_BATCH_BYTES: Final = 5_000_000
#: Records per request: no documented cap; the Java producer and DIS guidance stay <= 1000 (§8).
DEFAULT_MAX_BATCH_RECORDS: Final = 500
MAX_BATCH_RECORDS: Final = 1000
#: The smallest record budget we accept: room for the JSON envelope and the truncation marker.
MIN_RECORD_BYTES: Final = 256
DEFAULT_MAX_QUEUE_RECORDS: Final = 100_000
DEFAULT_MAX_QUEUE_BYTES: Final = 64 * 2**20
DEFAULT_SPOOL_MAX_BYTES: Final = 256 * 2**20
#: Concurrent PutRecords requests per handler; more gains nothing on a 1 MB/s partition.
MAX_IN_FLIGHT: Final = 16
#: Longest duration a setting that is waited on may have (flush_interval, block_timeout,
#: close_timeout, request_timeout, the backoffs): about 11.5 days. A wait far longer
#: fails inside the threading module ("timestamp out of range"): the flusher thread would end.
MAX_WAIT_SECONDS: Final = 1_000_000.0

OVERFLOW_POLICIES: Final = ("drop_oldest", "drop_newest", "block")
OVERSIZE_POLICIES: Final = ("truncate", "drop")
SERIALIZATIONS: Final = ("json", "protobuf")
SPOOL_MODES: Final = ("outage", "always")

DIS_URL_TEMPLATE: Final = "https://dis.{region}.myhuaweicloud.com"
IAM_URL_TEMPLATE: Final = "https://iam.{region}.myhuaweicloud.com"
#: The global IAM endpoint (DIS-API.md section 1): tokens for projects of every region.
IAM_GLOBAL_URL: Final = "https://iam.myhuaweicloud.com"

#: Environment variables (DIS-API.md §2 for the HUAWEICLOUD_SDK_* ones; DIS_LOGGING_* are ours).
ENV_AK: Final = "HUAWEICLOUD_SDK_AK"
ENV_SK: Final = "HUAWEICLOUD_SDK_SK"
ENV_SECURITY_TOKEN: Final = "HUAWEICLOUD_SDK_SECURITY_TOKEN"
ENV_PROJECT_ID: Final = "HUAWEICLOUD_SDK_PROJECT_ID"
ENV_IAM_ENDPOINT: Final = "HUAWEICLOUD_SDK_IAM_ENDPOINT"
ENV_REGION_DIS_PREFIX: Final = "HUAWEICLOUD_SDK_REGION_DIS_"
ENV_CREDENTIALS_FILE: Final = "HUAWEICLOUD_SDK_CREDENTIALS_FILE"
ENV_USERNAME: Final = "DIS_LOGGING_USERNAME"
ENV_PASSWORD: Final = "DIS_LOGGING_PASSWORD"
ENV_DOMAIN_NAME: Final = "DIS_LOGGING_DOMAIN_NAME"
ENV_ENDPOINT: Final = "DIS_LOGGING_ENDPOINT"
ENV_STREAM: Final = "DIS_LOGGING_STREAM"
ENV_REGION: Final = "DIS_LOGGING_REGION"
ENV_SPOOL_DIR: Final = "DIS_LOGGING_SPOOL_DIR"
ENV_ENABLED: Final = "DIS_LOGGING_ENABLED"
ENV_METADATA_CREDENTIALS: Final = "DIS_LOGGING_METADATA_CREDENTIALS"
ENV_METADATA_ENDPOINT: Final = "DIS_LOGGING_METADATA_ENDPOINT"
#: Every ``DIS_LOGGING_*`` variable the package reads; any other one is a typo worth a word.
KNOWN_DIS_LOGGING_VARIABLES: Final = frozenset(
    {
        ENV_USERNAME,
        ENV_PASSWORD,
        ENV_DOMAIN_NAME,
        ENV_ENDPOINT,
        ENV_STREAM,
        ENV_REGION,
        ENV_SPOOL_DIR,
        ENV_ENABLED,
        ENV_METADATA_CREDENTIALS,
        ENV_METADATA_ENDPOINT,
    }
)
DEFAULT_CREDENTIALS_FILE: Final = os.path.join("~", ".huaweicloud", "credentials")
#: The credentials file section the Huawei SDK reads for project-scoped keys.
CREDENTIALS_SECTION: Final = "basic"

PartitionKey = Union[None, str, Callable[[logging.LogRecord], Optional[str]]]
TokenSetting = Union[None, str, Callable[[], str]]
Diagnostics = Optional[Callable[[str], None]]
#: What a setting accepts besides its own type: the strings ``dictConfig``/``fileConfig`` pass.
FloatSetting = Union[float, str]
IntSetting = Union[int, str]
BoolSetting = Union[bool, str]
LevelSetting = Union[int, str]
#: ``on_failure(records, reason)``: payloads given up on, and why (``"failed"``, ``"close"``, ...).
FailureHook = Callable[[List[bytes], str], None]
_EXT_PREFIX: Final = "ext://"
_F = TypeVar("_F", bound=Callable[..., None])


class HandlerSettings(TypedDict, total=False):
    """The keyword arguments of :class:`~dis_logging.handler.DISHandler`, for typing ``**kwargs``.

    :class:`~dis_logging.structlog_processor.DISProcessor` forwards these to the handler it
    builds; the meaning of each is in the handler's docstring (a test keeps both lists equal).
    ``partition_key`` is left out: the processor's own ``partition_key`` picks a key from the
    event dict instead of a log record.
    """

    stream_name: Optional[str]
    level: LevelSetting
    project_id: Optional[str]
    region: Optional[str]
    endpoint: Optional[str]
    iam_endpoint: Optional[str]
    ak: Optional[str]
    sk: Optional[str]
    security_token: Optional[str]
    username: Optional[str]
    password: Optional[str]
    domain_name: Optional[str]
    token: TokenSetting
    stream_id: Optional[str]
    partition_id: Optional[str]
    flush_interval: FloatSetting
    max_batch_records: IntSetting
    max_batch_bytes: IntSetting
    max_queue_records: IntSetting
    max_queue_bytes: IntSetting
    overflow: str
    block_timeout: FloatSetting
    priority_level: LevelSetting
    max_record_bytes: Optional[IntSetting]
    oversize: str
    flush_on_level: Optional[LevelSetting]
    request_timeout: FloatSetting
    max_retry_time: FloatSetting
    initial_backoff: FloatSetting
    max_backoff: FloatSetting
    close_timeout: FloatSetting
    drain_on_sigterm: BoolSetting
    max_in_flight: IntSetting
    max_records_per_second: FloatSetting
    max_bytes_per_second: FloatSetting
    auto_rate_limit: BoolSetting
    spool_dir: Optional[str]
    spool_max_bytes: IntSetting
    spool_mode: str
    verify: BoolSetting
    serialization: str
    allow_insecure_http: BoolSetting
    diagnostics: Union[str, Callable[[str], None], None]
    report_interval: FloatSetting
    enabled: Optional[BoolSetting]
    on_failure: Union[str, FailureHook, None]
    metadata_credentials: Optional[BoolSetting]
    metadata_endpoint: Optional[str]


def unknown_keywords_error(unknown: Sequence[str], known: Iterable[str]) -> ConfigError:
    """Build the error for unknown keywords: every one of them, each with its closest known name.

    Args:
        unknown: the unknown names, in the order given.
        known: the accepted names.

    Returns:
        A :class:`ConfigError` whose ``field`` lists the unknown names, comma-separated.
    """
    choices = sorted(known)
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, choices, n=1)
        parts.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    noun = "setting" if len(parts) == 1 else "settings"
    return ConfigError(", ".join(unknown), f"unknown {noun}: {', '.join(parts)}")


def check_keywords(init: _F) -> _F:
    """Decorate an ``__init__`` so that unknown keywords raise one :class:`ConfigError` naming all.

    Python itself would raise a ``TypeError`` for the first unknown keyword only; a settings dict
    with two typos would take two rounds to fix. The signature seen by type checkers, editors and
    :func:`inspect.signature` stays the decorated one.

    Args:
        init: the ``__init__`` to wrap.

    Returns:
        The wrapper, typed as ``init``.
    """
    parameters = inspect.signature(init).parameters
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    known = frozenset(n for n, p in parameters.items() if p.kind in kinds and n != "self")

    @functools.wraps(init)
    def wrapper(self: object, *args: Any, **kwargs: Any) -> None:
        try:
            unknown = [name for name in kwargs if name not in known]
            if unknown:
                raise unknown_keywords_error(unknown, known)
            init(self, *args, **kwargs)
        finally:
            # A traceback that shows locals must not show the secrets among the keywords; init
            # got its own bindings, so emptying this dict changes nothing for it.
            kwargs.clear()

    return cast(_F, wrapper)


#: Settings read from ``HUAWEICLOUD_SDK_<NAME>`` (the SDK's convention), not ``DIS_LOGGING_<NAME>``.
_SDK_VARIABLE_SUFFIXES: Final = frozenset(
    {"AK", "SK", "SECURITY_TOKEN", "PROJECT_ID", "IAM_ENDPOINT", "CREDENTIALS_FILE"}
)


def unknown_variables(env: Optional[Mapping[str, str]] = None) -> List[str]:
    """Name the ``DIS_LOGGING_*`` variables that the package does not read, each with the
    closest one it reads (``DIS_LOGGING_SPOOLDIR`` would otherwise switch the spool off in
    silence).

    Args:
        env: the environment to read; default ``None`` reads :data:`os.environ`.

    Returns:
        One phrase per unknown variable, sorted, such as
        ``"DIS_LOGGING_SPOOLDIR (did you mean DIS_LOGGING_SPOOL_DIR?)"``; empty when all are known.
    """
    environ = os.environ if env is None else env
    prefix = "DIS_LOGGING_"
    # Compared without the shared prefix, which would make every name look close.
    choices = sorted(name[len(prefix) :] for name in KNOWN_DIS_LOGGING_VARIABLES)
    found = []
    for name in sorted(environ):
        if name.startswith(prefix) and name not in KNOWN_DIS_LOGGING_VARIABLES:
            suffix = name[len(prefix) :]
            if suffix in _SDK_VARIABLE_SUFFIXES:  # the keys and project come from the SDK's
                found.append(f"{name} (did you mean HUAWEICLOUD_SDK_{suffix}?)")
                continue
            close = difflib.get_close_matches(suffix, choices, n=1)
            found.append(f"{name} (did you mean {prefix}{close[0]}?)" if close else name)
    return found


def is_enabled(value: object = None, env: Optional[Mapping[str, str]] = None) -> bool:
    """Whether shipping is on: the ``enabled`` keyword, else ``DIS_LOGGING_ENABLED``, else on.

    Args:
        value: the keyword (a bool, or a string such as ``"false"``); ``None`` reads the
            environment.
        env: the environment to read; default ``None`` reads :data:`os.environ`.

    Returns:
        ``False`` when switched off.

    Raises:
        ConfigError: the value is not a boolean.
    """
    if value is not None:
        return _to_bool("enabled", value)
    text = _env(os.environ if env is None else env, ENV_ENABLED)
    return True if text is None else _to_bool(ENV_ENABLED, text)


@dataclass(frozen=True)
class Connection:
    """Where to send and how to authenticate, fully resolved; secrets are left out of the repr.

    Attributes:
        endpoint: DIS base URL without a trailing slash.
        project_id: the project id used in every DIS path, or ``None`` when not required.
        region: region id, or ``None``.
        iam_endpoint: IAM base URL, or ``None`` for the client's default (the DIS endpoint itself
            unless it is a Huawei Cloud one).
        ak, sk, security_token: AK/SK credentials, or ``None``.
        username, password, domain_name: IAM password credentials, or ``None``.
        token: a ready ``X-Auth-Token`` or a callable returning one, or ``None``.
        metadata_endpoint: base URL of the metadata service that hands out temporary AK/SK
            credentials, or ``None`` when they are not used.
    """

    endpoint: str
    project_id: Optional[str]
    region: Optional[str] = None
    iam_endpoint: Optional[str] = None
    ak: Optional[str] = None
    sk: Optional[str] = field(default=None, repr=False)
    security_token: Optional[str] = field(default=None, repr=False)
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    domain_name: Optional[str] = None
    token: TokenSetting = field(default=None, repr=False)
    metadata_endpoint: Optional[str] = None

    @property
    def credential_kind(self) -> Optional[str]:
        """``"aksk"``, ``"password"``, ``"token"``, ``"metadata"``, or ``None`` without any."""
        if self.metadata_endpoint is not None:
            return "metadata"
        if self.ak is not None:
            return "aksk"
        if self.username is not None:
            return "password"
        if self.token is not None:
            return "token"
        return None

    @property
    def secrets(self) -> Tuple[str, ...]:
        """The secret strings of these credentials, for masking diagnostics."""
        values = (self.sk, self.security_token, self.password, self.token)
        return tuple(v for v in values if isinstance(v, str) and v)

    def client_kwargs(self) -> Dict[str, Any]:
        """Return the keywords for ``DISClient(endpoint, project_id, **kwargs)``, without ``None``s.

        Returns:
            A new dict with ``region``, ``iam_endpoint`` and the credential keywords that are set.
        """
        names = ("region", "iam_endpoint", "ak", "sk", "security_token", "username", "password")
        kwargs: Dict[str, Any] = {
            n: getattr(self, n) for n in names if getattr(self, n) is not None
        }
        if self.domain_name is not None:
            kwargs["domain_name"] = self.domain_name
        if self.token is not None:
            kwargs["token"] = self.token
        if self.metadata_endpoint is not None:
            kwargs["metadata_endpoint"] = self.metadata_endpoint
        return kwargs


def resolve_connection(
    endpoint: Optional[str] = None,
    project_id: Optional[str] = None,
    region: Optional[str] = None,
    iam_endpoint: Optional[str] = None,
    ak: Optional[str] = None,
    sk: Optional[str] = None,
    security_token: Optional[str] = None,
    username: Optional[str] = None,
    password: Optional[str] = None,
    domain_name: Optional[str] = None,
    token: Union[str, Callable[[], str], None] = None,
    *,
    metadata_credentials: object = None,
    metadata_endpoint: Optional[str] = None,
    allow_insecure_http: bool = False,
    require_project: bool = True,
    require_credentials: bool = True,
    env: Optional[Mapping[str, str]] = None,
) -> Connection:
    """Resolve endpoint, project and credentials from keywords, environment and credentials file.

    Used by the handler and by the ``dis-logging`` command line, so both read the same variables
    the same way (see the module docstring for the order).

    Args:
        endpoint: DIS base URL (``https://...``; ``http://`` only for loopback hosts unless
            ``allow_insecure_http``); default ``None`` derives it from the environment or
            ``region``.
        project_id: project id; default ``None`` reads the environment / credentials file.
        region: region id such as ``cn-north-4``; default ``None`` reads ``DIS_LOGGING_REGION``.
        iam_endpoint: IAM base URL for password tokens; default ``None`` derives it.
        ak, sk, security_token: AK/SK credentials; default ``None``.
        username, password, domain_name: IAM user credentials; default ``None``.
        token: a ready token, a callable returning one, or ``"ext://module.attr"``; default
            ``None``.
        metadata_credentials: ``True`` signs with the temporary credentials of the instance's IAM
            agency, fetched from the metadata service (no other credentials allowed); default
            ``None`` reads ``DIS_LOGGING_METADATA_CREDENTIALS`` (``false`` when unset).
        metadata_endpoint: the metadata service's base URL, used with ``metadata_credentials``;
            default ``None`` reads ``DIS_LOGGING_METADATA_ENDPOINT``, else
            ``http://169.254.169.254``. Plain ``http://`` only to that address or loopback.
        allow_insecure_http: allow ``http://`` to non-loopback hosts; default ``False``.
        require_project: raise when no project id is found; default ``True``.
        require_credentials: raise when no credential kind is found; default ``True``.
        env: the environment to read; default ``None`` reads :data:`os.environ`.

    Returns:
        The resolved :class:`Connection`.

    Raises:
        ConfigError: a value is malformed, two credential kinds are given, or something required is
            missing; ``field`` names the keyword.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    allow_http = _to_bool("allow_insecure_http", allow_insecure_http)
    region_source = "" if _optional_str("region", region) else ENV_REGION
    region = _optional_str("region", region) or _env(environ, ENV_REGION)
    if region is not None and not REGION_PATTERN.fullmatch(region):
        raise ConfigError(
            "region", f"must look like 'cn-north-4', got {region!r}{_from(region_source)}"
        )

    profile = _CredentialsFile(environ)
    given_credentials = {
        "ak": ak,
        "sk": sk,
        "security_token": security_token,
        "username": username,
        "password": password,
        "domain_name": domain_name,
        "token": token,
    }
    metadata_url = _metadata_endpoint(
        metadata_credentials, metadata_endpoint, given_credentials, environ
    )
    if metadata_url is None:
        creds = _resolve_credentials(given_credentials, environ, profile, require_credentials)
    else:
        # The agency's temporary keys replace every other source: none is read.
        creds = dict.fromkeys(given_credentials)

    url = _optional_str("endpoint", endpoint)
    url_source = ""
    if url is None:
        url, url_source = _env(environ, ENV_ENDPOINT), ENV_ENDPOINT
    if url is None and region is None:
        region = _only_overridden_region(environ)
        if region is not None:
            region_source = "the name of " + _region_override_name(region)
    if url is None and region is not None:
        url_source = _region_override_name(region)
        listed = _env(environ, url_source)
        if listed:
            url = next((u.strip() for u in listed.split(",") if u.strip()), None)
        if url is None:
            url = DIS_URL_TEMPLATE.format(region=region)
    if url is None:
        raise _no_endpoint_error(environ)
    url = _checked_url("endpoint", url, url_source, allow_http)
    if region is not None:
        check_region_matches(url, region, region_source=region_source, endpoint_source=url_source)

    # Each field is looked up on its own: a project id from the credentials file works with keys
    # from the environment or the keywords.
    project = (
        _optional_str("project_id", project_id)
        or _env(environ, ENV_PROJECT_ID)
        or profile.get("project_id")
    )
    if project is None and require_project:
        raise ConfigError(
            "project_id",
            f"no project id: pass project_id= (--project-id), set {ENV_PROJECT_ID}, "
            f"or add project_id to the [{CREDENTIALS_SECTION}] section of the credentials file",
        )

    iam = _optional_str("iam_endpoint", iam_endpoint)
    iam_source = ""
    if iam is None:
        iam, iam_source = _env(environ, ENV_IAM_ENDPOINT), ENV_IAM_ENDPOINT
    password_auth = creds.get("username") is not None
    if iam is None:
        iam, iam_source = profile.get("iam_endpoint", needed=password_auth), "the credentials file"
    if iam is None and password_auth:
        iam, iam_source = default_iam_endpoint(url, region), ""
    if iam is not None:
        iam = _checked_url("iam_endpoint", iam, iam_source, allow_http)

    return Connection(
        endpoint=url,
        project_id=project,
        region=region,
        iam_endpoint=iam,
        metadata_endpoint=metadata_url,
        **creds,
    )


def _from(source: str) -> str:
    """`` (from SOURCE)`` for a value read from the environment or a file, else ``""``."""
    return f" (from {source})" if source else ""


def _checked_url(field: str, url: str, source: str, allow_http: bool) -> str:
    """:func:`check_base_url`, its error saying where the value came from when not a keyword."""
    try:
        return check_base_url(field, url, allow_http=allow_http)
    except ConfigError as exc:
        if not source:
            raise
        message = str(exc)
    # Raised outside the except clause: a chained copy of the same error says nothing more.
    raise ConfigError(field, message[len(field) + 2 :] + _from(source))


#: ``dis.<region>.myhuaweicloud.com``: a Huawei Cloud DIS endpoint names its region.
_REGIONAL_DIS_HOST: Final = re.compile(r"dis\.([a-z0-9-]+)\.myhuaweicloud\.com")


def check_region_matches(
    endpoint: str, region: str, *, region_source: str = "", endpoint_source: str = ""
) -> None:
    """Refuse a region that contradicts the region a Huawei Cloud DIS endpoint names.

    ``region="cn-north-4"`` with ``https://dis.ap-southeast-1.myhuaweicloud.com`` sends to one
    region while IAM tokens and the host-name hints are for the other; every password-token
    request would then fail (``APIG.0307``). Other hosts (the emulator, a proxy, a VPC endpoint)
    name no region and pass.

    Args:
        endpoint: the DIS base URL.
        region: the region id given with it.
        region_source: the variable the region came from, ``""`` for a keyword.
        endpoint_source: the variable the endpoint came from, ``""`` for a keyword.

    Raises:
        ConfigError: the endpoint's host is ``dis.<other>.myhuaweicloud.com``; ``field`` is
            ``"region"``.
    """
    match = _REGIONAL_DIS_HOST.fullmatch((urlsplit(endpoint).hostname or "").lower())
    if match is None or match.group(1) == region:
        return
    raise ConfigError(
        "region",
        f"{region!r}{_from(region_source)} contradicts the endpoint {endpoint}"
        f"{_from(endpoint_source)}, which is in region {match.group(1)!r}; "
        "give only one of them, or make them agree",
    )


def default_iam_endpoint(endpoint: str, region: Optional[str] = None) -> Optional[str]:
    """Return the IAM base URL that goes with a DIS endpoint, or ``None`` for the endpoint itself.

    The one derivation used by the handler, :class:`~dis_logging.client.DISClient` and the
    command line:

    * ``https://dis.<r>.myhuaweicloud.com`` -> ``https://iam.<region or r>.myhuaweicloud.com``
      (the regional IAM endpoint issues tokens for that region's projects);
    * any other ``*.myhuaweicloud.com`` host -> ``https://iam.<region>.myhuaweicloud.com`` when a
      region is known, else the global ``https://iam.myhuaweicloud.com``;
    * any other host (the emulator, a proxy, a private gateway) -> ``None``: IAM is served on
      the DIS endpoint itself.

    Args:
        endpoint: the DIS base URL.
        region: the region id, when known; default ``None``.

    Returns:
        The IAM base URL, or ``None`` meaning "use ``endpoint``".
    """
    host = (urlsplit(endpoint).hostname or "").lower()
    match = re.fullmatch(r"dis\.([a-z0-9-]+)\.myhuaweicloud\.com", host)
    if match is not None:
        return IAM_URL_TEMPLATE.format(region=region or match.group(1))
    if host.endswith(".myhuaweicloud.com"):
        return IAM_URL_TEMPLATE.format(region=region) if region else IAM_GLOBAL_URL
    return None


class _CredentialsFile:
    """The ``[basic]`` section of the credentials file, read once and only when a field needs it.

    A file named by ``HUAWEICLOUD_SDK_CREDENTIALS_FILE`` that does not exist is an error only when
    a setting had to be read from it.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._values: Optional[Dict[str, str]] = None
        #: Why a file that exists gave no access key (no ``[basic]`` section, or no ak/sk in it),
        #: for the "none found" error; ``None`` when it gave some, or was not read or not there.
        self.problem: Optional[str] = None

    def get(self, name: str, *, needed: bool = True) -> Optional[str]:
        """The value of ``name``; a missing file raises only when the value is ``needed``."""
        if self._values is None:
            try:
                self._values, self.problem = _read_credentials_file(self._environ)
            except ConfigError:
                if needed:
                    raise
                return None
        return self._values.get(name) or None


#: Credential fields by kind, and the environment variable of each field.
_KIND_FIELDS: Final = {
    "aksk": ("ak", "sk", "security_token"),
    "password": ("username", "password", "domain_name"),
    "token": ("token",),
}
_CREDENTIAL_ENV: Final = {
    "ak": ENV_AK,
    "sk": ENV_SK,
    "security_token": ENV_SECURITY_TOKEN,
    "username": ENV_USERNAME,
    "password": ENV_PASSWORD,
    "domain_name": ENV_DOMAIN_NAME,
}
#: The flag or keyword, and the environment variable, that can supply each credential field.
_CREDENTIAL_HINTS: Final = {
    "ak": f"pass ak= (--ak) or set {ENV_AK}",
    "sk": f"pass sk= (--sk) or set {ENV_SK}",
    "username": f"pass username= (--username) or set {ENV_USERNAME}",
    "password": f"pass password= (--password) or set {ENV_PASSWORD}",
    "domain_name": f"pass domain_name= (--domain-name) or set {ENV_DOMAIN_NAME}",
}


def _kinds(values: Mapping[str, Any]) -> List[str]:
    """The credential kinds ``values`` starts: a key, a user name or password, or a token."""
    kinds = []
    if values.get("ak") is not None or values.get("sk") is not None:
        kinds.append("aksk")
    if values.get("username") is not None or values.get("password") is not None:
        kinds.append("password")
    if values.get("token") is not None:
        kinds.append("token")
    return kinds


def _metadata_endpoint(
    switch: object,
    endpoint: Optional[str],
    given_credentials: Mapping[str, object],
    environ: Mapping[str, str],
) -> Optional[str]:
    """The metadata service's URL when temporary credentials are switched on, else ``None``.

    Raises:
        ConfigError: the switch is not a boolean, other credentials are given with it, the URL is
            unsafe, or ``metadata_endpoint`` is given while the switch is off.
    """
    if switch is None:
        use = _to_bool(ENV_METADATA_CREDENTIALS, _env(environ, ENV_METADATA_CREDENTIALS) or "false")
    else:
        use = _to_bool("metadata_credentials", switch)
    if not use:
        if _optional_str("metadata_endpoint", endpoint) is not None:
            raise ConfigError("metadata_endpoint", "is used only with metadata_credentials=True")
        return None
    for name, value in given_credentials.items():
        if value is not None and not (isinstance(value, str) and not value.strip()):
            raise ConfigError(
                name,
                "conflicts with metadata_credentials: the temporary credentials come from the "
                "metadata service",
            )
    return check_metadata_endpoint(
        _optional_str("metadata_endpoint", endpoint)
        or _env(environ, ENV_METADATA_ENDPOINT)
        or DEFAULT_METADATA_ENDPOINT
    )


def _resolve_credentials(
    given: Dict[str, Any],
    environ: Mapping[str, str],
    profile: _CredentialsFile,
    required: bool,
) -> Dict[str, Any]:
    """Pick one credential kind, then fill each of its fields from keyword, environment, file.

    The kind comes from the keywords when they name one (``sk`` alone still means AK/SK, and the
    ``ak`` then comes from the environment or the file); else from the environment (IAM user
    first, then AK/SK); else from the credentials file. ``security_token`` belongs to the secret
    key it was issued with: unless given as a keyword, it is read from the place ``sk`` came from.
    """
    keywords: Dict[str, Any] = {}
    for name, value in given.items():
        if name == "token":
            keywords[name] = _token_setting(value)
        else:
            keywords[name] = _optional_str(name, value)
    kinds = _kinds(keywords)
    if len(kinds) > 1:
        first, second = (_KIND_FIELDS[kind][0] for kind in kinds[:2])
        raise ConfigError(
            second,
            f"conflicts with {first}: give exactly one credential kind "
            "(ak/sk, username/password/domain_name, or token)",
        )
    from_env = {name: _env(environ, var) for name, var in _CREDENTIAL_ENV.items()}
    if kinds:
        kind: Optional[str] = kinds[0]
    elif keywords["security_token"] is not None:
        kind = "aksk"  # keys from the environment or file, the token from the keyword
    elif keywords["domain_name"] is not None:
        kind = "password"
    elif from_env["username"] is not None or from_env["password"] is not None:
        kind = "password"
    elif from_env["ak"] is not None or from_env["sk"] is not None:
        kind = "aksk"
    elif profile.get("ak") or profile.get("sk"):
        kind = "aksk"
    else:
        kind = None

    values: Dict[str, Any] = dict.fromkeys(_CREDENTIAL_ENV)
    values["token"] = None
    if kind == "token":
        values["token"] = keywords["token"]
    elif kind == "password":
        for name in _KIND_FIELDS["password"]:
            values[name] = keywords[name] or from_env[name]
    elif kind == "aksk":
        sk_source = "keyword"
        for name in ("ak", "sk"):
            if keywords[name] is not None:
                values[name] = keywords[name]
            elif from_env[name] is not None:
                values[name] = from_env[name]
                sk_source = "env" if name == "sk" else sk_source
            else:
                values[name] = profile.get(name)
                sk_source = "file" if name == "sk" else sk_source
        token_sources = {
            "keyword": None,
            "env": from_env["security_token"],
            "file": profile.get("security_token") if sk_source == "file" else None,
        }
        values["security_token"] = keywords["security_token"] or token_sources[sk_source]
    return _check_credential_set(values, required, profile.problem)


def _read_credentials_file(environ: Mapping[str, str]) -> Tuple[Dict[str, str], Optional[str]]:
    """Read the ``[basic]`` section of the credentials file.

    Returns:
        The section's non-empty values, and why a file that exists gave no access key (``None``
        when it gave one or does not exist). The reason names sections and keys, never a value.

    Raises:
        ConfigError: the file named by ``HUAWEICLOUD_SDK_CREDENTIALS_FILE`` does not exist, or the
            file cannot be read or parsed.
    """
    explicit = _env(environ, ENV_CREDENTIALS_FILE)
    path = os.path.expanduser(explicit or DEFAULT_CREDENTIALS_FILE)
    if not os.path.isfile(path):
        if explicit:
            raise ConfigError(ENV_CREDENTIALS_FILE, f"file not found: {path!r}")
        return {}, None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8-sig")  # a byte order mark (Windows editors) is skipped
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise ConfigError(
            ENV_CREDENTIALS_FILE, f"cannot read {path!r}: {type(exc).__name__}"
        ) from None
    if not parser.has_section(CREDENTIALS_SECTION):
        sections = ", ".join(f"[{name}]" for name in parser.sections()) or "none"
        return {}, f"{path!r} has no [{CREDENTIALS_SECTION}] section (sections: {sections})"
    values = {k: v.strip() for k, v in parser.items(CREDENTIALS_SECTION) if v.strip()}
    if "ak" in values or "sk" in values:
        return values, None
    keys = ", ".join(sorted(values)) or "none with a value"
    return values, f"the [{CREDENTIALS_SECTION}] section of {path!r} has no ak or sk (keys: {keys})"


def _check_credential_set(
    values: Dict[str, Any], required: bool, file_problem: Optional[str] = None
) -> Dict[str, Any]:
    def missing(name: str, other: str) -> ConfigError:
        return ConfigError(name, f"is required with {other}: {_CREDENTIAL_HINTS[name]}")

    if values["ak"] is None and values["sk"] is None and values["security_token"] is not None:
        raise ConfigError("security_token", "is only used with ak and sk")
    if values["username"] is None and values["password"] is None and values["domain_name"]:
        raise ConfigError("domain_name", "is only used with username and password")
    if values["ak"] is not None or values["sk"] is not None:
        if values["ak"] is None:
            raise missing("ak", "sk")
        if values["sk"] is None:
            raise missing("sk", "ak")
    elif values["username"] is not None or values["password"] is not None:
        if values["username"] is None:
            raise missing("username", "password")
        if values["password"] is None:
            raise missing("password", "username")
        if values["domain_name"] is None:
            raise missing("domain_name", "username/password")
    elif values["token"] is None and required:
        raise ConfigError(
            "credentials",
            "none found: pass ak/sk, username/password/domain_name or token, or set "
            f"{ENV_AK}/{ENV_SK} or {ENV_USERNAME}/{ENV_PASSWORD}/{ENV_DOMAIN_NAME}, "
            f"or write them to the credentials file ({ENV_CREDENTIALS_FILE}, "
            f"default {DEFAULT_CREDENTIALS_FILE})"
            + ("" if file_problem is None else f"; {file_problem}"),
        )
    return dict(values)


_TRUE: Final = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE: Final = frozenset({"0", "false", "no", "off", "n", "f"})


def _region_override_names(environ: Mapping[str, str]) -> list[str]:
    """The names of the non-empty ``HUAWEICLOUD_SDK_REGION_DIS_*`` variables, sorted."""
    return sorted(
        name
        for name, value in environ.items()
        if name.startswith(ENV_REGION_DIS_PREFIX) and value.strip()
    )


def _only_overridden_region(environ: Mapping[str, str]) -> Optional[str]:
    """The region of the only ``HUAWEICLOUD_SDK_REGION_DIS_<REGION>`` variable, if just one is set.

    With several set, nothing says which one is meant, so the caller still has to name a region.
    Only a name the endpoint is then read from counts: the region in upper case, ``-`` as ``_``
    (as the Huawei Cloud SDKs spell it).
    """
    names = _region_override_names(environ)
    if len(names) != 1:
        return None
    region = names[0][len(ENV_REGION_DIS_PREFIX) :].lower().replace("_", "-")
    if not REGION_PATTERN.fullmatch(region) or names[0] != _region_override_name(region):
        return None
    return region


def _region_override_name(region: str) -> str:
    """``HUAWEICLOUD_SDK_REGION_DIS_CN_NORTH_4`` for ``cn-north-4``."""
    return ENV_REGION_DIS_PREFIX + region.replace("-", "_").upper()


def _no_endpoint_error(environ: Mapping[str, str]) -> ConfigError:
    """The error for a configuration naming no endpoint and no region, with what was found."""
    hint = ""
    names = _region_override_names(environ)
    if len(names) > 1:
        hint = f" ({', '.join(names)} are all set: the region says which one counts)"
    elif names:
        region = names[0][len(ENV_REGION_DIS_PREFIX) :].lower().replace("_", "-")
        hint = (
            f" ({names[0]} is not read: the region in a variable's name is upper case "
            f"({_region_override_name(region)}))"
        )
    return ConfigError(
        "endpoint",
        f"no DIS endpoint: pass endpoint= or region=, or set {ENV_ENDPOINT} or {ENV_REGION}" + hint,
    )


def _env(environ: Mapping[str, str], name: str) -> Optional[str]:
    value = environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _optional_str(name: str, value: object) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(name, f"must be a string, got {type(value).__name__}")
    value = value.strip()
    return value or None


def _to_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ConfigError(name, f"must be a boolean (true/false), got {value!r}")


def _to_int(name: str, value: object, minimum: int, maximum: Optional[int] = None) -> int:
    number: int
    if isinstance(value, bool):
        raise ConfigError(name, f"must be an integer, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            number = int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                raise ConfigError(name, f"must be an integer, got {value!r}") from None
            if not as_float.is_integer():
                raise ConfigError(name, f"must be an integer, got {value!r}") from None
            number = int(as_float)
    else:
        raise ConfigError(name, f"must be an integer, got {type(value).__name__}")
    if number < minimum:
        raise ConfigError(name, f"must be >= {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ConfigError(name, f"must be <= {maximum}, got {number}")
    return number


def _to_float(
    name: str,
    value: object,
    minimum: float = 0.0,
    *,
    positive: bool = False,
    maximum: Optional[float] = None,
) -> float:
    number: float
    if isinstance(value, bool):
        raise ConfigError(name, f"must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace("_", ""))
        except ValueError:
            raise ConfigError(name, f"must be a number, got {value!r}") from None
    else:
        raise ConfigError(name, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(number):
        raise ConfigError(name, f"must be finite, got {value!r}")
    if positive and number <= 0:
        raise ConfigError(name, f"must be > 0, got {value!r}")
    if number < minimum:
        raise ConfigError(name, f"must be >= {minimum}, got {value!r}")
    if maximum is not None and number > maximum:
        raise ConfigError(name, f"must be <= {maximum:.0f} seconds, got {value!r}")
    return number


def _to_choice(name: str, value: object, choices: Tuple[str, ...]) -> str:
    if isinstance(value, str) and value.strip().lower() in choices:
        return value.strip().lower()
    raise ConfigError(name, f"must be one of {', '.join(choices)}; got {value!r}")


def _to_level(name: str, value: object, *, optional: bool = False) -> Optional[int]:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        if optional:
            return None
        raise ConfigError(name, "must be a logging level")
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(name, f"must be a logging level >= 0, got {value}")
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        level = logging.getLevelName(text.upper())
        if isinstance(level, int):
            return level
    raise ConfigError(name, f"must be a logging level name or number, got {value!r}")


def import_object(path: str, *, setting: str = "path") -> object:
    """Import ``"package.module.attr"``, ``"package.module:attr"`` or ``"ext://package.module.attr"``.

    Args:
        path: the dotted path; the ``ext://`` prefix of ``logging.config`` is accepted.
        setting: the setting name to put in the error.

    Returns:
        The imported object.

    Raises:
        ConfigError: the module or attribute cannot be imported.
    """
    text = path[len(_EXT_PREFIX) :] if path.startswith(_EXT_PREFIX) else path
    module_name, sep, attr = text.partition(":")
    if not sep:
        module_name, _, attr = text.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(setting, f"not a dotted path to an object: {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(setting, f"cannot import {module_name!r}: {exc}") from None
    target: object = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(setting, f"{module_name!r} has no attribute {attr!r}") from None
    return target


def _callable_setting(name: str, value: object, *, strings_are_paths: bool) -> object:
    """Return ``value`` if callable, import it if it is a path string, else return it unchanged."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(_EXT_PREFIX) or (strings_are_paths and text):
            obj = import_object(text, setting=name)
            if not callable(obj):
                raise ConfigError(name, f"{text!r} is not callable")
            return obj
        return text or None
    if value is None or callable(value):
        return value
    raise ConfigError(name, f"must be a string or a callable, got {type(value).__name__}")


def check_fixed_or_callable(name: str, value: object) -> None:
    """Check a setting that takes a fixed string or a callable (``partition_key`` of the
    structlog processor and the Loguru sink), or ``None``.

    Raises:
        ConfigError: anything else (an int key was ignored silently at every record).
    """
    if value is not None and not isinstance(value, str) and not callable(value):
        raise ConfigError(name, f"must be a string or a callable, got {type(value).__name__}")


def check_flag(name: str, value: object) -> bool:
    """Return a boolean setting given as a bool, 0 or 1, or the words ``"true"``/``"false"``.

    Raises:
        ConfigError: anything else (the text ``"false"`` was taken as true).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(name, f"must be true or false, got {value!r}")


def _token_setting(value: object) -> TokenSetting:
    result = _callable_setting("token", value, strings_are_paths=False)
    return result  # type: ignore[return-value]  # checked: None, str or a callable


# HandlerConfig carries every Connection field under the same name.
_CONNECTION_FIELDS: Final = dataclasses.fields(Connection)


@dataclass(frozen=True)
class HandlerConfig:
    """Every setting of a :class:`~dis_logging.handler.DISHandler`, validated.

    Build it with :meth:`from_kwargs`. Durations are float seconds, sizes bytes. Secrets are left
    out of the repr. The README's configuration table gives the meaning and default of each field;
    the handler's docstring repeats it.
    """

    stream_name: str
    endpoint: str
    project_id: str
    region: Optional[str] = None
    iam_endpoint: Optional[str] = None
    ak: Optional[str] = None
    sk: Optional[str] = field(default=None, repr=False)
    security_token: Optional[str] = field(default=None, repr=False)
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    domain_name: Optional[str] = None
    token: TokenSetting = field(default=None, repr=False)
    stream_id: Optional[str] = None
    partition_key: PartitionKey = None
    partition_id: Optional[str] = None
    flush_interval: float = 1.0
    max_batch_records: int = DEFAULT_MAX_BATCH_RECORDS
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    max_queue_records: int = DEFAULT_MAX_QUEUE_RECORDS
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES
    overflow: str = "drop_oldest"
    block_timeout: float = 1.0
    priority_level: int = logging.WARNING
    max_record_bytes: int = DEFAULT_MAX_BATCH_BYTES
    oversize: str = "truncate"
    flush_on_level: Optional[int] = None
    request_timeout: float = 10.0
    max_retry_time: float = 300.0
    initial_backoff: float = 0.1
    max_backoff: float = 30.0
    close_timeout: float = 5.0
    drain_on_sigterm: bool = True
    max_in_flight: int = 1
    max_records_per_second: float = 0.0
    max_bytes_per_second: float = 0.0
    auto_rate_limit: bool = False
    spool_dir: Optional[str] = None
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    spool_mode: str = "outage"
    verify: Union[bool, str] = True
    serialization: str = "json"
    allow_insecure_http: bool = False
    diagnostics: Diagnostics = None
    report_interval: float = 60.0
    enabled: bool = True
    on_failure: Optional[FailureHook] = None
    metadata_credentials: bool = False
    metadata_endpoint: Optional[str] = None

    @property
    def connection(self) -> Connection:
        """The endpoint and credentials as a :class:`Connection`."""
        return Connection(**{f.name: getattr(self, f.name) for f in _CONNECTION_FIELDS})

    @property
    def secrets(self) -> Tuple[str, ...]:
        """Secret strings to mask in diagnostics."""
        return self.connection.secrets

    @classmethod
    def keywords(cls) -> FrozenSet[str]:
        """Return the names :meth:`from_kwargs` accepts.

        Returns:
            Every field name of the dataclass.
        """
        return frozenset(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_kwargs(
        cls, env: Optional[Mapping[str, str]] = None, /, **kwargs: Any
    ) -> HandlerConfig:
        """Validate handler keywords, coerce strings, apply environment fallbacks.

        Args:
            env: the environment to read; default ``None`` reads :data:`os.environ`.
            **kwargs: the handler keywords (see the class fields); values may be strings as
                ``fileConfig``/``dictConfig`` deliver them (``"1.5"``, ``"true"``, ``"100"``).

        Returns:
            The validated configuration.

        Raises:
            ConfigError: an unknown keyword, a malformed or out-of-range value, a missing stream,
                project or credential, or conflicting settings; ``field`` names the setting.
        """
        known = cls.keywords()
        unknown = [name for name in kwargs if name not in known]
        if unknown:
            raise unknown_keywords_error(unknown, known)
        environ: Mapping[str, str] = os.environ if env is None else env
        # None means "not given" for every setting: the handler passes its defaults explicitly.
        given = {name: value for name, value in kwargs.items() if value is not None}

        try:
            return cls._from_given(given, environ)
        except ConfigError as exc:
            # Raised again from here: the frames below hold the keywords (secrets among them)
            # in their locals, which a traceback capturing locals would show.
            error = ConfigError(exc.field, str(exc).partition(": ")[2])
        finally:
            given.clear()
            kwargs.clear()
        raise error

    @classmethod
    def _from_given(cls, given: Dict[str, Any], environ: Mapping[str, str]) -> HandlerConfig:
        """:meth:`from_kwargs` after the unknown-keyword check, with ``None`` values removed."""
        stream = _optional_str("stream_name", given.get("stream_name")) or _env(environ, ENV_STREAM)
        if not is_enabled(given.get("enabled"), environ):
            # Switched off: nothing is sent, so neither stream, endpoint nor credentials are
            # needed or checked; the other settings still are, so a typo shows up in development.
            values_off: Dict[str, Any] = {
                "stream_name": stream or "",
                "endpoint": "",
                "project_id": "",
                "enabled": False,
                "allow_insecure_http": _to_bool(
                    "allow_insecure_http", given.get("allow_insecure_http", False)
                ),
            }
            values_off.update(_tuning(given, environ, enabled=False))
            return cls(**values_off)
        if stream is None:
            raise ConfigError("stream_name", f"is required (or set {ENV_STREAM})")
        if not STREAM_NAME_PATTERN.fullmatch(stream):
            source = "" if _optional_str("stream_name", given.get("stream_name")) else ENV_STREAM
            raise ConfigError(
                "stream_name",
                f"must be 1-64 characters of A-Z a-z 0-9 _ -, got {stream!r}{_from(source)}",
            )

        allow_http = _to_bool("allow_insecure_http", given.get("allow_insecure_http", False))
        conn = resolve_connection(
            endpoint=given.get("endpoint"),
            project_id=given.get("project_id"),
            region=given.get("region"),
            iam_endpoint=given.get("iam_endpoint"),
            ak=given.get("ak"),
            sk=given.get("sk"),
            security_token=given.get("security_token"),
            username=given.get("username"),
            password=given.get("password"),
            domain_name=given.get("domain_name"),
            token=given.get("token"),
            metadata_credentials=given.get("metadata_credentials"),
            metadata_endpoint=given.get("metadata_endpoint"),
            allow_insecure_http=allow_http,
            env=environ,
        )
        assert conn.project_id is not None  # require_project=True guarantees it

        values: Dict[str, Any] = {
            "stream_name": stream,
            "endpoint": conn.endpoint,
            "project_id": conn.project_id,
            "region": conn.region,
            "iam_endpoint": conn.iam_endpoint,
            "ak": conn.ak,
            "sk": conn.sk,
            "security_token": conn.security_token,
            "username": conn.username,
            "password": conn.password,
            "domain_name": conn.domain_name,
            "token": conn.token,
            "allow_insecure_http": allow_http,
            "enabled": True,
            "metadata_credentials": conn.metadata_endpoint is not None,
            "metadata_endpoint": conn.metadata_endpoint,
        }
        values.update(_tuning(given, environ))
        return cls(**values)


def _tuning(
    given: Dict[str, Any], environ: Mapping[str, str], *, enabled: bool = True
) -> Dict[str, Any]:
    """Coerce and check the non-connection settings; ``given`` holds what the caller passed
    (``enabled``: whether the handler will run, so that its spool directory must be usable)."""
    defaults = {f.name: f.default for f in dataclasses.fields(HandlerConfig)}

    def get(name: str) -> Any:
        return given.get(name, defaults[name])

    out: Dict[str, Any] = {}
    out["stream_id"] = _optional_str("stream_id", given.get("stream_id"))
    partition_id = given.get("partition_id")
    if isinstance(partition_id, int) and not isinstance(partition_id, bool):
        partition_id = str(partition_id)  # "partition_id": 2 in a JSON or YAML configuration
    out["partition_id"] = _optional_str("partition_id", partition_id)
    if out["partition_id"] is not None and not PARTITION_ID_PATTERN.fullmatch(out["partition_id"]):
        raise ConfigError(
            "partition_id",
            f"must be a partition id such as 'shardId-0000000002' or '2', "
            f"got {out['partition_id']!r}",
        )
    key = _callable_setting("partition_key", given.get("partition_key"), strings_are_paths=False)
    if out["partition_id"] is not None and key is not None:
        raise ConfigError("partition_key", "conflicts with partition_id: give at most one")
    out["partition_key"] = key
    out["flush_interval"] = _to_float(
        "flush_interval", get("flush_interval"), positive=True, maximum=MAX_WAIT_SECONDS
    )
    batch_records = _to_int("max_batch_records", get("max_batch_records"), 1, MAX_BATCH_RECORDS)
    batch_bytes = _to_int(
        "max_batch_bytes", get("max_batch_bytes"), MIN_RECORD_BYTES, MAX_BATCH_BYTES
    )
    queue_records = _to_int("max_queue_records", get("max_queue_records"), 1)
    queue_bytes = _to_int("max_queue_bytes", get("max_queue_bytes"), MIN_RECORD_BYTES)
    if "max_record_bytes" in given:
        record_bytes = _to_int("max_record_bytes", given["max_record_bytes"], MIN_RECORD_BYTES)
        if record_bytes > batch_bytes:
            raise ConfigError(
                "max_record_bytes",
                f"must not exceed max_batch_bytes ({batch_bytes}), got {record_bytes}",
            )
        if record_bytes > queue_bytes:
            raise ConfigError(
                "max_record_bytes",
                f"must not exceed max_queue_bytes ({queue_bytes}), got {record_bytes}",
            )
    else:
        record_bytes = min(DEFAULT_MAX_BATCH_BYTES, batch_bytes, queue_bytes)
    out.update(
        max_batch_records=batch_records,
        max_batch_bytes=batch_bytes,
        max_queue_records=queue_records,
        max_queue_bytes=queue_bytes,
        max_record_bytes=record_bytes,
    )
    out["overflow"] = _to_choice("overflow", get("overflow"), OVERFLOW_POLICIES)
    out["block_timeout"] = _to_float(
        "block_timeout", get("block_timeout"), maximum=MAX_WAIT_SECONDS
    )
    out["priority_level"] = _to_level("priority_level", get("priority_level"))
    out["oversize"] = _to_choice("oversize", get("oversize"), OVERSIZE_POLICIES)
    out["flush_on_level"] = _to_level("flush_on_level", get("flush_on_level"), optional=True)
    out["request_timeout"] = _to_float(
        "request_timeout", get("request_timeout"), positive=True, maximum=MAX_WAIT_SECONDS
    )
    out["max_retry_time"] = _to_float("max_retry_time", get("max_retry_time"))
    out["initial_backoff"] = _to_float(
        "initial_backoff", get("initial_backoff"), maximum=MAX_WAIT_SECONDS
    )
    out["max_backoff"] = _to_float("max_backoff", get("max_backoff"), maximum=MAX_WAIT_SECONDS)
    if out["initial_backoff"] > out["max_backoff"]:
        raise ConfigError("initial_backoff", f"must not exceed max_backoff ({out['max_backoff']})")
    out["close_timeout"] = _to_float(
        "close_timeout", get("close_timeout"), maximum=MAX_WAIT_SECONDS
    )
    out["drain_on_sigterm"] = _to_bool("drain_on_sigterm", get("drain_on_sigterm"))
    out["max_in_flight"] = _to_int("max_in_flight", get("max_in_flight"), 1, MAX_IN_FLIGHT)
    out["max_records_per_second"] = _to_float(
        "max_records_per_second", get("max_records_per_second")
    )
    out["max_bytes_per_second"] = _to_float("max_bytes_per_second", get("max_bytes_per_second"))
    out["auto_rate_limit"] = _to_bool("auto_rate_limit", get("auto_rate_limit"))
    if 0 < out["max_bytes_per_second"] < record_bytes:
        raise ConfigError(
            "max_bytes_per_second",
            f"must be 0 (off) or at least max_record_bytes ({record_bytes})",
        )
    spool_dir = _optional_str("spool_dir", given.get("spool_dir"))
    spool_source = ""
    if spool_dir is None:
        spool_dir, spool_source = _env(environ, ENV_SPOOL_DIR), ENV_SPOOL_DIR
    if spool_dir is not None:
        spool_dir = os.path.expanduser(spool_dir)
        from dis_logging.spool import check_directory  # sqlite3 only when a spool is set

        # Owned by another user or writable by others: refused; one this user cannot create or
        # write: refused too, unless the handler is off (then it is never opened).
        check_directory(spool_dir, usable=enabled, source=spool_source)
    if spool_dir is not None and out["max_in_flight"] > 1:
        raise ConfigError("max_in_flight", "must be 1 when spool_dir is set")
    out["spool_dir"] = spool_dir
    out["spool_max_bytes"] = _to_int("spool_max_bytes", get("spool_max_bytes"), MIN_RECORD_BYTES)
    out["spool_mode"] = _to_choice("spool_mode", get("spool_mode"), SPOOL_MODES)
    out["verify"] = _verify_setting(get("verify"))
    out["serialization"] = _to_choice("serialization", get("serialization"), SERIALIZATIONS)
    diagnostics = _callable_setting("diagnostics", given.get("diagnostics"), strings_are_paths=True)
    out["diagnostics"] = diagnostics
    out["report_interval"] = _to_float("report_interval", get("report_interval"))
    on_failure = _callable_setting("on_failure", given.get("on_failure"), strings_are_paths=True)
    out["on_failure"] = on_failure
    return out


def _verify_setting(value: object) -> Union[bool, str]:
    # Only the spelled-out words: "0", "no", "off" and the like must not switch TLS checks off
    # by accident, so anything else is a CA bundle path (and an error when there is none).
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        path = os.path.expanduser(value.strip())
        if not os.path.exists(path):
            raise ConfigError(
                "verify", f"must be true, false or the path of a CA bundle; {path!r} does not exist"
            )
        return path
    raise ConfigError("verify", f"must be a boolean or a CA bundle path, got {value!r}")
