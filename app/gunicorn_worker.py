"""gunicorn's gthread worker with a receive timeout on client sockets, answering requests that break HTTP in JSON."""

from __future__ import annotations

import json
import logging
import socket
import struct
import time

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from .config import ServerConfig

# The API's error codes for the statuses gunicorn answers itself, before the application sees a request.
PROTOCOL_ERROR_CODES = {400: "malformed_request", 403: "forbidden", 414: "request_line_too_long",
                        417: "expectation_failed", 431: "headers_too_large", 501: "not_implemented"}


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error`` with the API's JSON error body instead of an HTML page."""
    code = PROTOCOL_ERROR_CODES.get(status_int, "internal_error")
    body = json.dumps({"error": {"code": code, "message": mesg or reason}}).encode("utf-8")
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


class SilentClientLine(logging.Filter):
    """gthread logs a client that went silent mid-headers (the receive timeout's EAGAIN) as an error with a traceback,
    which any client could fill the log with: one DEBUG line instead."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.exc_info and isinstance(record.exc_info[1], BlockingIOError)):
            return True
        record.msg, record.args = "a client went silent mid-request for READ_TIMEOUT seconds: connection closed", ()
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return self.logger.isEnabledFor(logging.DEBUG)


class ReadTimeoutThreadWorker(ThreadWorker):
    """gthread, but a client that goes silent mid-request (headers or body) is cut off after
    ``READ_TIMEOUT`` seconds instead of holding one of the worker's threads for as long as it likes;
    the heartbeat file is touched at most once a second, not on every pass of the event loop; a request that breaks
    HTTP itself (its request line or headers) is answered with the API's JSON error, not gunicorn's HTML; and a client
    cut off mid-headers is one DEBUG line, not an error's traceback."""

    HEARTBEAT_SECONDS = 1.0

    def init_process(self) -> None:
        seconds = ServerConfig.from_env().read_timeout
        self._rcvtimeo = struct.pack("ll", seconds, 0)
        self._last_notify = float("-inf")
        util.write_error = write_json_error  # gunicorn's one writer of those answers (Worker.handle_error)
        self.log.error_log.addFilter(SilentClientLine(self.log.error_log))
        super().init_process()

    def notify(self) -> None:
        now = time.monotonic()
        if now - self._last_notify >= self.HEARTBEAT_SECONDS:
            self._last_notify = now
            super().notify()

    def enqueue_req(self, conn) -> None:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, self._rcvtimeo)
        super().enqueue_req(conn)
