"""Round trip through a local emulator: log with a DISHandler, read back with DISClient.

Needs no cloud account and no environment: the emulator runs inside this process::

    python examples/emulator_roundtrip.py
"""

from __future__ import annotations

import json
import logging
import sys

from dis_logging import DISClient, DISEmulator, DISHandler


def main() -> int:
    with DISEmulator() as emulator:
        emulator.create_stream("roundtrip", partitions=2)

        handler = DISHandler(
            stream_name="roundtrip",
            endpoint=emulator.url,
            iam_endpoint=emulator.url,
            region=emulator.region,
            project_id=emulator.project_id,
            # IAM password authentication: the handler fetches and caches a token.
            username=emulator.username,
            password=emulator.password,
            domain_name=emulator.domain_name,
            partition_key="roundtrip-example",
        )
        logger = logging.getLogger("example.roundtrip")
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        for number in range(10):
            logger.info("event %d", number, extra={"number": number})
        delivered = handler.flush(timeout=10.0)
        logger.removeHandler(handler)
        handler.close()

        client = DISClient(
            emulator.url,
            emulator.project_id,
            region=emulator.region,
            ak=emulator.ak,
            sk=emulator.sk,
        )
        try:
            read = []
            for partition in client.describe_stream("roundtrip")["partitions"]:
                cursor = client.get_cursor("roundtrip", partition["partition_id"], "TRIM_HORIZON")
                result = client.get_records(cursor)
                read.extend(json.loads(record.data) for record in result.records)
        finally:
            client.close()

    print(f"delivered={delivered} read back {len(read)} records")
    for event in read[:3]:
        print(f"  {event['timestamp']} {event['level']} {event['message']}")
    return 0 if delivered and len(read) == 10 else 1


if __name__ == "__main__":
    sys.exit(main())
