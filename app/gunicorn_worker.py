"""gunicorn's gthread worker with a receive timeout on client sockets, answering requests that break HTTP in JSON; and
its logger, whose access lines leave out query strings."""

from __future__ import annotations

import json
import logging
import socket
import struct
import time

from gunicorn import glogging, util
from gunicorn.workers.gthread import ThreadWorker

from .config import ServerConfig

# The API's error codes for the statuses gunicorn answers itself (a request it could not parse; a 500 where a
# response broke down after the application ran).
PROTOCOL_ERROR_CODES = {400: "malformed_request", 403: "forbidden", 414: "request_line_too_long",
                        417: "expectation_failed", 431: "headers_too_large", 501: "not_implemented"}
SOCKET_ERROR = "Socket error processing request."  # what gthread logs, with a traceback, for a socket that failed


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error`` with the API's JSON error body instead of an HTML page."""
    code = PROTOCOL_ERROR_CODES.get(status_int, "internal")
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
        if not (record.msg == SOCKET_ERROR and record.exc_info and isinstance(record.exc_info[1], BlockingIOError)):
            return True
        record.msg, record.args = "a client went silent mid-request for READ_TIMEOUT seconds: connection closed", ()
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return self.logger.isEnabledFor(logging.DEBUG)


class PathOnlyLogger(glogging.Logger):
    """gunicorn's logger, its request atom (``%(r)s``) without the query string, where a client could put tweet text.
    From the raw request line, which cannot hold a line break (``%(U)s`` is decoded: ``%0A`` would be one)."""

    def atoms(self, resp, req, environ, request_time) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        path = environ["RAW_URI"].partition("?")[0]
        atoms["r"] = f"{environ['REQUEST_METHOD']} {path} {environ['SERVER_PROTOCOL']}"
        return atoms


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
