"""Shared pieces for the provider tests: emulators per test, paced audio, leak checks."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from bench.emulators.server import RunningEmulators, start_emulators
from bench.signals import voiced
from tests.fixtures.waiting import eventually

FRAME = 320  # 20 ms of PCM16 at 8 kHz

# Distinct deterministic "speech": different seeds and pitches give different frames.
HELLO = "Hi, I'd like to check my order."
HELLO_PCM = voiced(1.2, seed=11)
NUMBER = "It's number four two seven."
NUMBER_PCM = voiced(0.9, f0=150.0, seed=12)
KNOWN = {HELLO: HELLO_PCM, NUMBER: NUMBER_PCM}


@contextlib.asynccontextmanager
async def emulators(**kwargs: Any) -> AsyncIterator[RunningEmulators]:
    kwargs.setdefault("known_utterances", KNOWN)
    emu = await start_emulators(**kwargs)
    try:
        yield emu
    finally:
        await emu.close()


def frames(pcm: bytes, size: int = FRAME) -> list[bytes]:
    return [pcm[i:i + size] for i in range(0, len(pcm) - size + 1, size)]


async def feed_paced(session: Any, pcm: bytes, *, speed: float = 4.0, size: int = FRAME) -> float:
    """Feed 20 ms frames ``speed`` times faster than real time; returns when the last went in."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n, frame in enumerate(frames(pcm, size)):
        session.feed(frame)
        due = start + (n + 1) * 0.02 / speed
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # a real socket to the emulator: paced as a caller would be
    return loop.time()


async def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    await eventually(predicate, timeout=timeout)


def other_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def assert_no_tasks_left(timeout: float = 1.0) -> None:
    """Every task the code under test started has finished (the emulator is closed first)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while other_tasks():
        if loop.time() > end:
            raise AssertionError(f"tasks left running: {other_tasks()}")
        await asyncio.sleep(0.01)  # polling: tasks have no hook to wait on


def child_processes(name: str) -> list[str]:
    """PIDs of this process's live (not zombie) children whose command name contains ``name``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
        except (OSError, ValueError):
            continue
        parts = stat.rsplit(")", 1)[1].split()
        if int(parts[1]) == os.getpid() and name in stat.split(")")[0] and parts[0] != "Z":
            found.append(proc.name)
    return found
