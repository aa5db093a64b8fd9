"""`GET /metrics`: the HTTP series and the core's (core/metrics.py) in Prometheus' text format.

With `WORKERS` > 1, `python -m app` gives the processes a fresh directory in
`PROMETHEUS_MULTIPROC_DIR` before any of them starts (and removes it on exit); prometheus-client
then keeps each process's values in files there, and a scrape, whichever process answers it,
adds up the files of all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response

from core import metrics
from core.config import IPNetwork
from core.runtime import Runtime
from rest_compat.translator import message_response
from schema.context import client_address

# Counters' `_created` twins double the series and say nothing an alert needs.
disable_created_metrics()

REQUESTS = Counter(
    "accounts_http_requests",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
)
# From a cached read (~0.2 ms) to a bcrypt login (~0.25 s) and the 120 s request limit.
DURATION = Histogram(
    "accounts_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120),
)
# How often each process refreshes its gauges (hash queue, pool) for the others' scrapes.
SAMPLE_SECONDS = 1.0


def exposition(accept: str) -> tuple[bytes, str]:
    """Every series of every server process, in the format the scraper asked for.

    Prometheus' text format, or OpenMetrics when the `Accept` header prefers it.
    """
    encode, content_type = choose_encoder(accept)
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return encode(REGISTRY), content_type
    _forget_dead_processes(directory)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return encode(registry), content_type


def _forget_dead_processes(directory: str) -> None:
    # A worker killed without a shutdown (kill -9, OOM) leaves its gauges' file behind; a
    # "live" gauge must stop counting it. uvicorn starts a replacement with a new pid.
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            # Another process's scrape may be removing the same file.
            with contextlib.suppress(FileNotFoundError):
                multiprocess.mark_process_dead(pid, directory)
        except PermissionError:
            pass  # alive, someone else's


def metrics_endpoint(runtime: Runtime) -> Callable[[Request], Awaitable[Response]]:
    settings = runtime.settings

    async def endpoint(request: Request) -> Response:
        address = client_address(request, settings.trusted_proxies)
        if not allowed(address, settings.metrics_allow):
            # The same answer as a path that does not exist.
            return message_response(404, "Not Found")
        metrics.sample(runtime)
        accept = request.headers.get("accept", "")
        body, content_type = await anyio.to_thread.run_sync(exposition, accept)
        return Response(body, headers={"content-type": content_type})

    return endpoint


def allowed(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # an IPv4 client of a dual-stack socket
    return any(ip in network for network in networks)


async def sample_forever(runtime: Runtime) -> None:
    """Keep this process's gauges fresh until cancelled (the application's lifespan)."""
    while True:
        metrics.sample(runtime)
        await asyncio.sleep(SAMPLE_SECONDS)


def process_exited() -> None:
    """This process's live gauges stop counting (a worker shutting down)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        with contextlib.suppress(FileNotFoundError):
            multiprocess.mark_process_dead(os.getpid(), directory)
