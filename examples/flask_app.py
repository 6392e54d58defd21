"""A Flask service whose records carry the request id, method, path, user and status.

Credentials, project and stream come from the environment, as in production::

    export HUAWEICLOUD_SDK_AK=... HUAWEICLOUD_SDK_SK=... HUAWEICLOUD_SDK_PROJECT_ID=...
    export DIS_LOGGING_STREAM=app-logs
    flask --app flask_app run

Against a local emulator (``dis-logging emulator`` prints these values)::

    export HUAWEICLOUD_SDK_REGION_DIS_CN_NORTH_4=http://127.0.0.1:8080

Then ``curl -H 'X-Request-ID: abc-1' localhost:5000/orders/7`` ships the view's record and one
access record, both with ``request_id`` ``abc-1``, and the response carries ``X-Request-ID: abc-1``.
"""

from __future__ import annotations

import logging
from typing import Dict

from flask import Flask, g

from dis_logging import DISHandler, JSONFormatter
from dis_logging.context import RequestContextFilter
from dis_logging.flask import RequestContext

logger = logging.getLogger("example.flask")
request_context = RequestContext(access_logger="example.access")


def setup_logging() -> DISHandler:
    """Attach a DISHandler with the request-context filter to the root logger."""
    handler = DISHandler(region="cn-north-4", flush_interval=0.2)
    handler.setFormatter(JSONFormatter(static_fields={"service": "flask-example"}))
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    return handler


def create_app() -> Flask:
    """Build the application, and the logging setup unless a DISHandler is already configured."""
    if not any(isinstance(h, DISHandler) for h in logging.getLogger().handlers):
        setup_logging()  # closed by logging.shutdown at exit
    app = Flask(__name__)
    request_context.init_app(app)

    @app.get("/orders/<int:order_id>")
    def order(order_id: int) -> Dict[str, object]:
        logger.info("order %d shown", order_id, extra={"order_id": order_id})
        return {"order_id": order_id, "request_id": g.request_id}

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("the view failed")

    return app


if __name__ == "__main__":
    create_app().run()
