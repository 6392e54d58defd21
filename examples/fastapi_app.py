"""A FastAPI service whose records carry the request id, method, path, user and status.

Credentials, project and stream come from the environment, as in production::

    export HUAWEICLOUD_SDK_AK=... HUAWEICLOUD_SDK_SK=... HUAWEICLOUD_SDK_PROJECT_ID=...
    export DIS_LOGGING_STREAM=app-logs
    uvicorn fastapi_app:app --host 127.0.0.1 --port 8000

Against a local emulator (``dis-logging emulator`` prints these values)::

    export HUAWEICLOUD_SDK_REGION_DIS_CN_NORTH_4=http://127.0.0.1:8080

Then ``curl -H 'X-Request-ID: abc-1' localhost:8000/items/42`` ships the endpoint's record and one
access record, both with ``request_id`` ``abc-1``, and the response carries ``X-Request-ID: abc-1``.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator, Dict

from fastapi import FastAPI, Request

from dis_logging import DISHandler, JSONFormatter
from dis_logging.asgi import RequestContextMiddleware
from dis_logging.context import RequestContextFilter

logger = logging.getLogger("example.fastapi")


def setup_logging() -> DISHandler:
    """Attach a DISHandler with the request-context filter to the root logger."""
    handler = DISHandler(region="cn-north-4", flush_interval=0.2)
    handler.setFormatter(JSONFormatter(static_fields={"service": "fastapi-example"}))
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    return handler


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    handler = setup_logging()
    logger.info("service started")
    yield
    logger.info("service stopping")
    logging.getLogger().removeHandler(handler)
    handler.close()  # sends what is left, within close_timeout


api = FastAPI(lifespan=lifespan)


@api.get("/items/{item_id}")
async def read_item(item_id: int, request: Request) -> Dict[str, object]:
    logger.info("item %d looked up", item_id, extra={"item_id": item_id})
    return {"item_id": item_id, "request_id": request.state.request_id}


@api.get("/boom")
async def boom() -> None:
    raise RuntimeError("the endpoint failed")


# Wrapping the whole application (rather than ``api.add_middleware(RequestContextMiddleware)``,
# which also works) puts the context around Starlette's own error handling too, so the 500 page
# for an unhandled exception carries the request id as well.
app = RequestContextMiddleware(api, access_logger="example.access")
