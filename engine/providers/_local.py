"""Shared plumbing of the offline speech providers (the optional ``[local-ai]`` extra).

The models run in-process but off the event loop, in small bounded thread pools: a
call's audio or text waits its turn in a queue rather than spawning a thread, so a
hundred calls cost a hundred queued jobs, not a hundred threads fighting for two cores.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from .base import ProviderError

T = TypeVar("T")
INSTALL_HINT = "pip install -e '.[local-ai]'"


def missing_modules(*modules: str) -> list[str]:
    """The modules of ``modules`` that cannot be imported (checked without importing them)."""
    missing = []
    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    return missing


def require_extra(provider: str, *modules: str) -> None:
    """Raise a clear, final :class:`ProviderError` when the ``[local-ai]`` extra is missing."""
    missing = missing_modules(*modules)
    if missing:
        raise ProviderError(
            provider, f"{', '.join(missing)} not installed: install the optional extra with {INSTALL_HINT}",
            retryable=False,
        )


class SharedModel:
    """A model loaded once per process on first use, whoever asks first (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[tuple[object, ...], object] = {}

    def get(self, key: tuple[object, ...], load: Callable[[], T]) -> T:
        with self._lock:  # held while loading: a second caller waits rather than loads again
            model = self._models.get(key)
            if model is None:
                model = self._models[key] = load()
            return model  # type: ignore[return-value]


class BoundedPool:
    """A lazily created thread pool of ``workers`` threads; closing it drops queued jobs."""

    def __init__(self, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    async def run(self, provider: str, fn: Callable[..., T], *args: object) -> T:
        if self._closed:
            raise ProviderError(provider, "closed", retryable=False)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
        # A cancelled await also cancels the job if it has not started yet.
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class LazyLoad(Generic[T]):
    """A provider's model, loaded in its pool on the first :meth:`get`. Concurrent callers share
    the one load; a failed load is a final :class:`ProviderError`, and the next caller retries."""

    def __init__(self, pool: BoundedPool, provider: str, load: Callable[[], T], what: str) -> None:
        self._pool = pool
        self._provider = provider
        self._load = load
        self._what = what
        self._value: T | None = None
        self._loading: asyncio.Future[T] | None = None

    async def get(self) -> T:
        if self._value is not None:
            return self._value
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._pool.run(self._provider, self._load))
        try:
            value = await asyncio.shield(self._loading)
            self._value = value
        except ProviderError:
            self._loading = None
            raise
        except Exception as exc:
            self._loading = None
            raise ProviderError(self._provider, f"cannot load the {self._what}: {exc.__class__.__name__}: {exc}",
                                retryable=False) from None
        return value
