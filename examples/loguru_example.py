"""Ship Loguru messages to DIS, one JSON record per message.

Credentials and the endpoint come from the environment, as in production::

    export HUAWEICLOUD_SDK_AK=... HUAWEICLOUD_SDK_SK=... HUAWEICLOUD_SDK_PROJECT_ID=...
    python examples/loguru_example.py app-logs

Against a local emulator (``dis-logging emulator`` prints these values)::

    export HUAWEICLOUD_SDK_REGION_DIS_CN_NORTH_4=http://127.0.0.1:8080
"""

from __future__ import annotations

import sys

from loguru import logger

from dis_logging.loguru_sink import DISSink


def main(argv: list[str]) -> int:
    stream = argv[1] if len(argv) > 1 else "app-logs"
    sink = DISSink(stream_name=stream, region="cn-north-4")
    sink_id = logger.add(sink, level="INFO")  # stderr output stays as Loguru configured it

    log = logger.bind(service="loguru-example")
    log.info("user {} logged in", "alice")
    log.bind(order_id=7).warning("payment retried")
    log.debug("not shipped: below the sink's level")
    try:
        1 / 0  # noqa: B018 - an exception to log
    except ZeroDivisionError:
        log.exception("division failed")

    logger.complete()  # waits until DIS acknowledged the three records
    stats = sink.handler.stats
    logger.remove(sink_id)  # closes the sink and its handler
    print(f"sent={stats.sent} dropped={stats.dropped}")
    return 0 if stats.sent == 3 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
