"""A closed-loop HTTP/1.1 load generator for loopback: N clients on keep-alive connections, each sending
its next request when the previous answer arrives, bounded in time and in count. Rates and latencies are those of
the answers with a 2xx status; every answer's status is counted. Needs only what the edge environment has.

    python -m bench.loadgen --port 8080 --clients 16 --seconds 30 --bodies bodies.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from app.arguments import number, whole_number

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _request(host: str, port: int, path: str, body: bytes, token: str | None) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
            f"Content-Length: {len(body)}"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Status code and whether the server keeps the connection open."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed before a response")
    status = int(status_line.split()[1])
    length, close = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    await reader.readexactly(length)
    return status, not close


@dataclass(frozen=True)
class LoadSpec:
    port: int
    clients: int = 1
    seconds: float = 30
    max_requests: int = 1_000_000
    timeout: float = 30
    tweets_per_request: int = 1
    host: str = "127.0.0.1"
    path: str = "/classify"
    token: str | None = None


def run_load(spec: LoadSpec, bodies: Sequence[bytes]) -> dict:
    """Drive the service with ``spec.clients`` connections cycling through ``bodies``; a summary of what came back."""
    if spec.host not in LOOPBACK:
        raise ValueError(f"load is generated on loopback only, not {spec.host}")
    requests = [_request(spec.host, spec.port, spec.path, body, spec.token) for body in bodies]
    return asyncio.run(_run(spec, requests))


async def _client(n: int, args: LoadSpec, requests: list[bytes], deadline: float, budget: list[int], out: dict) -> None:
    reader = writer = None
    i = n
    while time.perf_counter() < deadline and budget[0] > 0:
        budget[0] -= 1
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(args.host, args.port)
            started = time.perf_counter()
            writer.write(requests[i % len(requests)])
            await writer.drain()
            status, keep = await asyncio.wait_for(_read_response(reader), args.timeout)
            if 200 <= status < 300:  # a refusal is no tweet served: its time is not a classification's
                out["latencies"].append(time.perf_counter() - started)
            out["status"][status] += 1
            if not keep:
                writer.close()
                writer = None
        except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            out["errors"][type(exc).__name__] += 1
            if writer is not None:
                writer.close()
            writer = None
        i += args.clients
    if writer is not None:
        writer.close()


async def _run(args: LoadSpec, requests: list[bytes]) -> dict:
    out = {"latencies": [], "status": Counter(), "errors": Counter()}
    budget = [args.max_requests]
    started = time.perf_counter()
    await asyncio.gather(*(_client(n, args, requests, started + args.seconds, budget, out) for n in range(args.clients)))
    elapsed = time.perf_counter() - started
    ms = np.asarray(out["latencies"]) * 1000
    served = len(ms)

    def ms_at(q: float) -> float | None:  # None, not 0, where no request was served
        return round(float(np.percentile(ms, q)), 2) if served else None

    return {
        "clients": args.clients, "seconds": round(elapsed, 2), "requests": sum(out["status"].values()),
        "served": served, "tweets_per_s": round(served * args.tweets_per_request / elapsed, 2),
        "p50_ms": ms_at(50), "p95_ms": ms_at(95), "p99_ms": ms_at(99), "max_ms": ms_at(100),
        "status": {str(k): v for k, v in sorted(out["status"].items())},
        "server_errors": sum(v for k, v in out["status"].items() if k >= 500),
        "connection_errors": dict(out["errors"]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", choices=LOOPBACK, help="loopback only")
    p.add_argument("--port", type=whole_number(1, 65535), required=True)
    p.add_argument("--path", default="/classify")
    p.add_argument("--bodies", type=Path, required=True, help="JSONL: one request body per line")
    p.add_argument("--clients", type=whole_number(1), default=1)
    p.add_argument("--seconds", type=number(), default=30)
    p.add_argument("--max-requests", type=whole_number(1), default=1_000_000)
    p.add_argument("--timeout", type=number(), default=30, help="seconds to wait for one response")
    p.add_argument("--tweets-per-request", type=whole_number(1), default=1)
    p.add_argument("--token")
    args = p.parse_args(argv)
    if min(args.seconds, args.timeout) <= 0:
        p.error("--seconds and --timeout must be more than 0")
    try:
        bodies = [line for line in args.bodies.read_bytes().splitlines() if line.strip()]
    except OSError as exc:
        p.error(f"--bodies {args.bodies}: {exc.strerror}")
    if not bodies:
        p.error(f"--bodies {args.bodies}: no request body in it")
    spec = LoadSpec(args.port, args.clients, args.seconds, args.max_requests, args.timeout, args.tweets_per_request,
                    args.host, args.path, args.token)
    print(json.dumps(run_load(spec, bodies)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
