"""A view that logs: its record carries the request id, method, path and user."""

from __future__ import annotations

import logging

from django.http import HttpRequest, JsonResponse

logger = logging.getLogger("mysite.views")


def hello(request: HttpRequest) -> JsonResponse:
    name = request.GET.get("name", "world")
    logger.info("saying hello to %s", name, extra={"visitor": name})
    return JsonResponse({"hello": name, "request_id": getattr(request, "request_id", None)})
