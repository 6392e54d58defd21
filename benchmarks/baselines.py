"""The baselines the library is measured against: hand-written senders that use no dis_logging code.

- ``build_bodies`` + ``post_bodies``: a plain ``requests`` loop posting pre-built PutRecords
  bodies, one request in flight (the best a simple sender can do; P2 and P7).
- ``FormatOnlyHandler``: formats and discards, the floor of every handler using a formatter (P1,
  P3).
- ``NaiveHandler``: a handler that posts each record synchronously on the caller's thread (P2).
- ``SDKBatchHandler``: the official ``huaweicloudsdkdis`` client sending batches of 500 from a
  simple handler (P3).
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any, List, Sequence

import requests

#: Records per PutRecords request for the batching baselines, matching the handler's default
#: max_batch_records (DESIGN.md).
BATCH_RECORDS = 500


def build_bodies(
    stream: str, payloads: Sequence[bytes], batch_records: int = BATCH_RECORDS
) -> List[bytes]:
    """Encode ``payloads`` as PutRecords JSON bodies of ``batch_records`` records each.

    Args:
        stream: stream name.
        payloads: raw record data, in order.
        batch_records: records per body (default 500).

    Returns:
        The request bodies, ready to post.
    """
    bodies = []
    for start in range(0, len(payloads), batch_records):
        records = [
            {"data": base64.b64encode(p).decode("ascii")}
            for p in payloads[start : start + batch_records]
        ]
        bodies.append(json.dumps({"stream_name": stream, "records": records}).encode("utf-8"))
    return bodies


def records_url(url: str, project_id: str) -> str:
    """Return the PutRecords URL for base ``url`` and ``project_id``."""
    return f"{url}/v2/{project_id}/records"


def token_session(token: str) -> requests.Session:
    """Return a ``requests.Session`` sending JSON with ``X-Auth-Token: token``; the caller closes
    it."""
    session = requests.Session()
    session.headers.update({"Content-Type": "application/json", "X-Auth-Token": token})
    return session


def post_bodies(session: requests.Session, url: str, bodies: Sequence[bytes]) -> int:
    """Post each body in turn, one request in flight, and check every record was accepted.

    Args:
        session: a session from ``token_session``.
        url: the PutRecords URL.
        bodies: bodies from ``build_bodies``.

    Returns:
        Number of requests sent.

    Raises:
        RuntimeError: a request failed or a record was rejected (a baseline must not lose records).
    """
    for body in bodies:
        reply = session.post(url, data=body, timeout=30)
        if reply.status_code != 200 or reply.json().get("failed_record_count"):
            raise RuntimeError(
                f"baseline PutRecords failed: {reply.status_code} {reply.text[:200]}"
            )
    return len(bodies)


class FormatOnlyHandler(logging.Handler):
    """Formats each record and throws it away: what any handler with that formatter pays at
    least."""

    def emit(self, record: logging.LogRecord) -> None:
        """Format ``record`` and discard the result."""
        self.format(record)


class NaiveHandler(logging.Handler):
    """Posts every record on its own, synchronously, on the caller's thread.

    Args:
        url: the PutRecords URL.
        stream: stream name.
        token: X-Auth-Token value.
    """

    def __init__(self, url: str, stream: str, token: str) -> None:
        super().__init__()
        self._url = url
        self._stream = stream
        self._session = token_session(token)

    def emit(self, record: logging.LogRecord) -> None:
        """Format ``record`` and post it as a one-record PutRecords request."""
        try:
            data = base64.b64encode(self.format(record).encode("utf-8")).decode("ascii")
            body = json.dumps({"stream_name": self._stream, "records": [{"data": data}]})
            self._session.post(self._url, data=body, timeout=30).raise_for_status()
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()
        super().close()


class SDKBatchHandler(logging.Handler):
    """Buffers formatted records and sends each 500 through the official DIS SDK, caller's thread.

    This is how a team would wire ``huaweicloudsdkdis`` into logging without a library: simple and
    batched, AK/SK-signed by the SDK.

    Args:
        url: DIS base URL (the emulator's).
        project_id: project id.
        ak: access key.
        sk: secret key.
        stream: stream name.
        batch_records: records per request (default 500).
    """

    def __init__(
        self,
        url: str,
        project_id: str,
        ak: str,
        sk: str,
        stream: str,
        batch_records: int = BATCH_RECORDS,
    ) -> None:
        super().__init__()
        from huaweicloudsdkcore.auth.credentials import BasicCredentials
        from huaweicloudsdkdis.v2 import DisClient

        self._client: Any = (
            DisClient.new_builder()
            .with_credentials(BasicCredentials(ak, sk, project_id))
            .with_endpoints([url])
            .build()
        )
        self._stream = stream
        self._batch_records = batch_records
        self._pending: List[Any] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Format ``record`` into an SDK entry; send when 500 are pending."""
        from huaweicloudsdkdis.v2 import PutRecordsRequestEntry

        try:
            data = base64.b64encode(self.format(record).encode("utf-8")).decode("ascii")
            self._pending.append(PutRecordsRequestEntry(data=data))
            if len(self._pending) >= self._batch_records:
                self.flush()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Send what is pending in one SendRecords call."""
        from huaweicloudsdkdis.v2 import PutRecordsRequest, SendRecordsRequest

        if not self._pending:
            return
        entries, self._pending = self._pending, []
        body = PutRecordsRequest(stream_name=self._stream, records=entries)
        reply = self._client.send_records(SendRecordsRequest(body=body))
        if reply.failed_record_count:
            raise RuntimeError(f"SDK baseline lost {reply.failed_record_count} records")
