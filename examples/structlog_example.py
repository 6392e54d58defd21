"""Ship structlog events to DIS while still printing them on the console.

``DISProcessor`` renders each event dict as JSON and queues it on a DISHandler; with
``passthrough=True`` the event continues to the console renderer. Credentials come from
``HUAWEICLOUD_SDK_*`` environment variables (see ``plain_logging.py``)::

    python examples/structlog_example.py app-logs
"""

from __future__ import annotations

import sys

import structlog

from dis_logging.structlog_processor import DISProcessor


def main(argv: list[str]) -> int:
    stream = argv[1] if len(argv) > 1 else "app-logs"
    dis = DISProcessor(
        stream_name=stream,
        region="cn-north-4",
        passthrough=True,
        partition_key=lambda event: event.get("user"),
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            dis,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        cache_logger_on_first_use=False,
    )
    log = structlog.get_logger("checkout")
    structlog.contextvars.bind_contextvars(request_id="req-1")
    log.info("cart viewed", user="alice", items=3)
    log.warning("coupon rejected", user="alice", coupon="SPRING")
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed", user="bob")

    delivered = dis.flush(timeout=10.0)
    print(f"delivered={delivered} {dis.handler.stats}")
    dis.close()
    return 0 if delivered else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
