"""Ship records from a plain ``logging`` setup to DIS.

Credentials and the endpoint come from the environment, as in production::

    export HUAWEICLOUD_SDK_AK=... HUAWEICLOUD_SDK_SK=... HUAWEICLOUD_SDK_PROJECT_ID=...
    python examples/plain_logging.py app-logs

Against a local emulator (``dis-logging emulator`` prints these values)::

    export HUAWEICLOUD_SDK_REGION_DIS_CN_NORTH_4=http://127.0.0.1:8080
    export HUAWEICLOUD_SDK_IAM_ENDPOINT=http://127.0.0.1:8080
"""

from __future__ import annotations

import logging
import sys

from dis_logging import DISHandler, JSONFormatter


def main(argv: list[str]) -> int:
    stream = argv[1] if len(argv) > 1 else "app-logs"
    handler = DISHandler(stream_name=stream, region="cn-north-4")
    handler.setFormatter(JSONFormatter(static_fields={"service": "plain-example"}))

    logger = logging.getLogger("example.plain")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)

    logger.info("user %s logged in", "alice", extra={"user_id": 42})
    logger.warning("disk %d%% full", 91)
    try:
        1 / 0  # noqa: B018 - an exception to log
    except ZeroDivisionError:
        logger.exception("division failed")

    delivered = handler.flush(timeout=10.0)
    print(f"delivered={delivered} {handler.stats}")
    logger.removeHandler(handler)
    handler.close()
    return 0 if delivered else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
