"""dis-logging: ship Python logs to Huawei Cloud DIS streams.

See :class:`DISHandler` for the logging handler, :class:`DISClient` for the HTTP client and
:class:`DISEmulator` for the local DIS + IAM server used in development and tests.

The public names are loaded on first use (PEP 562), so ``import dis_logging`` stays cheap: the
pytest plugin imports this package in every test session of every project that installs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from dis_logging.errors import ConfigError

if TYPE_CHECKING:
    from dis_logging.client import DISClient
    from dis_logging.emulator import DISEmulator
    from dis_logging.formatting import JSONFormatter
    from dis_logging.handler import DISHandler, HandlerStats

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DISClient",
    "DISEmulator",
    "DISHandler",
    "HandlerStats",
    "JSONFormatter",
    "__version__",
]

_LAZY = {
    "DISClient": "dis_logging.client",
    "DISEmulator": "dis_logging.emulator",
    "DISHandler": "dis_logging.handler",
    "HandlerStats": "dis_logging.handler",
    "JSONFormatter": "dis_logging.formatting",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dis_logging' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
