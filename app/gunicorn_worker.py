"""gunicorn's gthread worker with a receive timeout on client sockets."""

from __future__ import annotations

import socket
import struct
import time

from gunicorn.workers.gthread import ThreadWorker

from .config import ServerConfig


class ReadTimeoutThreadWorker(ThreadWorker):
    """gthread, but a client that goes silent mid-request (headers or body) is cut off after
    ``READ_TIMEOUT`` seconds instead of holding one of the worker's threads for as long as it likes;
    and the heartbeat file is touched at most once a second, not on every pass of the event loop."""

    HEARTBEAT_SECONDS = 1.0

    def init_process(self) -> None:
        seconds = ServerConfig.from_env().read_timeout
        self._rcvtimeo = struct.pack("ll", seconds, 0)
        self._last_notify = float("-inf")
        super().init_process()

    def notify(self) -> None:
        now = time.monotonic()
        if now - self._last_notify >= self.HEARTBEAT_SECONDS:
            self._last_notify = now
            super().notify()

    def enqueue_req(self, conn) -> None:
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, self._rcvtimeo)
        super().enqueue_req(conn)
