"""gunicorn's gthread worker with a deadline on each request's reads, answering requests that break HTTP in JSON and
logging none of their bytes; and its logger, whose access lines leave out query strings."""

from __future__ import annotations

import errno
import json
import logging
import re
import socket
import struct
import time
from http import HTTPStatus

from gunicorn import glogging, util
from gunicorn.http.errors import ParseException
from gunicorn.workers.gthread import ThreadWorker

from .config import service_settings
from .headers import SECURITY_HEADERS
from .validation import ErrorCode

# The API's error codes for the statuses gunicorn answers itself (a request it could not parse; a 500 where a
# response broke down after the application ran).
PROTOCOL_ERROR_CODES = {400: ErrorCode.MALFORMED_REQUEST, 403: ErrorCode.FORBIDDEN,
                        414: ErrorCode.REQUEST_LINE_TOO_LONG, 417: ErrorCode.EXPECTATION_FAILED,
                        431: ErrorCode.HEADERS_TOO_LARGE, 501: ErrorCode.NOT_IMPLEMENTED}
SOCKET_ERROR = "Socket error processing request."  # what gthread logs, with a traceback, for a socket that failed
# gunicorn's lines that quote what a client sent (a request line, a header, a chunk: a tweet, where the client put one)
INVALID_REQUEST = "Invalid request from ip="
CLIENT_BYTES_LINES = (INVALID_REQUEST, "Ignored premature client disconnection.")
ERROR_HANDLING = "Error handling request %s %s"  # its arguments: the method and the URI, query string and all
_QUOTED = re.compile(r"""(:\s*)?b?['"].*""", re.DOTALL)  # from the first quote (or a colon before it) on


def without_client_bytes(message: str) -> str:
    """gunicorn's description of a bad request without the request's own bytes: 'Invalid chunk size: b"..."' is
    'Invalid chunk size' (what it quotes, a header's name included, is the client's)."""
    if message.startswith(INVALID_REQUEST):  # "Invalid request from ip=ADDR: REASON": the address stays
        address, colon, reason = message.removeprefix(INVALID_REQUEST).partition(": ")
        return f"{INVALID_REQUEST}{address}{colon}{_reason(reason)}"
    return _reason(message)


def _reason(text: str) -> str:
    return _QUOTED.sub("", text).split(": ")[0].strip()


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error`` with the API's JSON error body instead of an HTML page, and the security headers
    of the application's own answers."""
    code = PROTOCOL_ERROR_CODES.get(status_int, ErrorCode.INTERNAL).value
    reason = HTTPStatus(status_int).phrase  # gunicorn's own says "Bad Request" for a 501
    body = json.dumps({"error": {"code": code, "message": without_client_bytes(mesg) or reason}}).encode("utf-8")
    headers = {"Connection": "close", "Content-Type": "application/json", "Content-Length": len(body), **SECURITY_HEADERS}
    head = f"HTTP/1.1 {status_int} {reason}\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head += "\r\n"
    util.write_nonblock(sock, head.encode("latin-1") + body)


class ClientLines(logging.Filter):
    """gunicorn's lines about clients, as this service logs them: a client that went silent or too slow mid-headers
    (the receive timeout's EAGAIN), which gthread logs as an error with a traceback any client could fill the log
    with, is one DEBUG line; a line that would quote a bad request's bytes, or a failed request's query string, does
    not."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(CLIENT_BYTES_LINES):
            record.msg, record.args = without_client_bytes(record.getMessage()), ()
            return True
        if record.msg == ERROR_HANDLING and len(record.args) == 2:  # the path without its query string
            record.args = (record.args[0], str(record.args[1]).partition("?")[0])
            return True
        if not (record.msg == SOCKET_ERROR and record.exc_info and isinstance(record.exc_info[1], BlockingIOError)):
            return True
        record.msg, record.args = "a request did not arrive within READ_TIMEOUT seconds: connection closed", ()
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return self.logger.isEnabledFor(logging.DEBUG)


class PathOnlyLogger(glogging.Logger):
    """gunicorn's logger, its request atom (``%(r)s``) naming what the metrics name: the route the service matched
    (``unmatched`` for a path that is none) and the method (``other`` for one no HTTP client sends), never the path,
    query string or method as the client wrote them, where it could put tweet text."""

    def atoms(self, resp, req, environ, request_time) -> dict:
        from .metrics import ROUTE_KEY, method_label  # in the worker, which has them loaded: not in the master

        atoms = super().atoms(resp, req, environ, request_time)
        route = environ.get(ROUTE_KEY, "unmatched")
        atoms["r"] = f"{method_label(environ['REQUEST_METHOD'])} {route} {environ['SERVER_PROTOCOL']}"
        return atoms


class DeadlineSocket:
    """A client socket whose reads of one request end ``seconds`` after the first of them, with EAGAIN as a receive
    timeout ends one: a client that goes silent mid-request, or trickles a byte every few seconds, is cut off instead
    of holding one of the worker's threads for as long as it likes. Everything else is the socket's own."""

    def __init__(self, sock: socket.socket, seconds: int) -> None:
        self._sock, self._seconds, self._deadline = sock, seconds, None

    def __getattr__(self, name: str):
        return getattr(self._sock, name)

    def next_request(self) -> None:
        """The next read starts a new request's time."""
        self._deadline = None

    def recv(self, size: int, *flags: int) -> bytes:
        if self._sock.gettimeout() is not None:  # gunicorn's own bounded reads: a body's drain, a graceful close
            return self._sock.recv(size, *flags)
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self._seconds
        left = self._deadline - now
        if left <= 0:
            raise BlockingIOError(errno.EAGAIN, "the request did not arrive within READ_TIMEOUT seconds")
        left = max(left, 0.001)  # a receive timeout of 0 would be none at all
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", int(left), int(left % 1 * 1e6)))
        return self._sock.recv(size, *flags)


class ReadTimeoutThreadWorker(ThreadWorker):
    """gthread, but a request (headers and body) must arrive within ``READ_TIMEOUT`` seconds of the worker's first
    read of it, or its client is cut off (a 408 mid-body), instead of holding one of the worker's threads for as long
    as it likes;
    the heartbeat file is touched at most once a second, not on every pass of the event loop; a request that breaks
    HTTP itself (its request line or headers) is answered with the API's JSON error, not gunicorn's HTML, and an
    answered request's unread body that breaks it (a malformed chunk) closes the connection without a second answer;
    and a client cut off mid-headers is one DEBUG line, not an error's traceback."""

    HEARTBEAT_SECONDS = 1.0

    def init_process(self) -> None:
        self._read_timeout = service_settings()[0].read_timeout
        self._last_notify = float("-inf")
        util.write_error = write_json_error  # gunicorn's one writer of those answers (Worker.handle_error)
        self.log.error_log.addFilter(ClientLines(self.log.error_log))
        super().init_process()

    def notify(self) -> None:
        now = time.monotonic()
        if now - self._last_notify >= self.HEARTBEAT_SECONDS:
            self._last_notify = now
            super().notify()

    def _keepalive_after(self, conn, keepalive: bool) -> bool:
        """A body the application left unread is drained before the connection is kept; one that breaks HTTP there
        (a malformed chunk) closes it quietly: its request has had its answer, and gunicorn would send a second."""
        try:
            return super()._keepalive_after(conn, keepalive)
        except ParseException as error:
            self.log.debug("connection closed: an answered request's unread body is malformed (%s)",
                           without_client_bytes(str(error)))
            return False

    def enqueue_req(self, conn) -> None:
        """Every request of a connection passes here (a new one, a kept-alive one readable again, one read ahead)."""
        if not isinstance(conn.sock, DeadlineSocket):  # before the thread's conn.init() gives the parser the socket
            conn.sock = DeadlineSocket(conn.sock, self._read_timeout)
        conn.sock.next_request()
        super().enqueue_req(conn)
