"""Helpers of the Home Assistant discovery test (tests/ha/ha_discovery.py): failures, polling."""

from __future__ import annotations

import asyncio
import socket
import sys
import time


class Failure(Exception):
    """A check that did not hold."""


def check(cond: bool, what: str) -> None:
    if not cond:
        raise Failure(what)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# checks run at every poll of wait_for (HA's log, c3n-edge still running); each raises Failure
GUARDS: list = []


async def wait_for(what: str, timeout: float, cond, interval: float = 0.2):
    """Polls `cond` (sync or async) until it returns a truthy value, which is returned; runs
    GUARDS before each poll."""
    end = time.monotonic() + timeout
    while True:
        for g in GUARDS:
            g()
        v = cond()
        if asyncio.iscoroutine(v):
            v = await v
        if v:
            return v
        if time.monotonic() > end:
            raise Failure(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


def number(state: dict | None) -> float | None:
    try:
        return float(state["state"]) if state else None
    except (TypeError, ValueError):
        return None


def connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
