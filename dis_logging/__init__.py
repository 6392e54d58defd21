"""dis-logging: ship Python logs to Huawei Cloud DIS streams.

See :class:`DISHandler` for the logging handler, :class:`DISClient` for the HTTP client and
:class:`DISEmulator` for the local DIS + IAM server used in development and tests.
"""

from __future__ import annotations

from dis_logging.errors import ConfigError

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "__version__",
]
