"""Configure a DISHandler with ``logging.config.dictConfig``, the way most services do.

Every handler option is a plain value, so the same dict works in a YAML/JSON file or in
Django's ``LOGGING``. Credentials come from ``HUAWEICLOUD_SDK_*`` environment variables (see
``plain_logging.py``)::

    python examples/dict_config.py app-logs
"""

from __future__ import annotations

import logging
import logging.config
import sys


def logging_config(stream: str) -> dict[str, object]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "dis_logging.JSONFormatter",
                "static_fields": {"service": "orders", "env": "staging"},
                "rename_fields": {"timestamp": "@timestamp"},
            },
            "console": {"format": "%(asctime)s %(levelname)-8s %(name)s: %(message)s"},
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "console"},
            "dis": {
                "class": "dis_logging.DISHandler",
                "level": "INFO",
                "formatter": "json",
                "stream_name": stream,
                "region": "cn-north-4",
                "flush_interval": 1.0,
                "max_batch_records": 500,
                "max_queue_records": 100000,
                "overflow": "drop_oldest",
                "close_timeout": 5.0,
            },
        },
        "root": {"handlers": ["console", "dis"], "level": "INFO"},
    }


def main(argv: list[str]) -> int:
    stream = argv[1] if len(argv) > 1 else "app-logs"
    logging.config.dictConfig(logging_config(stream))
    logger = logging.getLogger("orders")
    for order_id in range(1, 6):
        logger.info("order %d created", order_id, extra={"order_id": order_id})
    logger.error("payment declined", extra={"order_id": 3, "reason": "card expired"})
    # logging.shutdown() runs at exit and flushes the handler; calling it here makes it visible.
    logging.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
