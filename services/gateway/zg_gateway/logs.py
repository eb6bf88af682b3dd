# SPDX-License-Identifier: Apache-2.0
"""A request aiohttp's HTTP parser refuses (a header value with control characters, a bad
Content-Length, a line too long) is answered 400 by aiohttp and logged by it with a traceback
at ERROR. Hostile input is not an error of the gateway: it gets one WARNING line."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError


class MalformedRequestsOnOneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            reason = (exc.message or type(exc).__name__).strip().splitlines()[0][:200]
            record.msg, record.args = "refused a malformed HTTP request: %s", (reason,)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_malformed_requests() -> None:
    logging.getLogger("aiohttp.server").addFilter(MalformedRequestsOnOneLine())
