"""Child processes that do not stop the event loop while they start.

uvloop spawns through libuv, which ``fork()``s: the whole loop waits while the kernel copies
the parent's page tables, longer the bigger the process (measured here: 4 ms at 50 MiB,
14 ms at 300 MiB, 37 ms at 1 GiB), and every call's audio waits with it. The standard
library's :class:`subprocess.Popen` uses ``vfork()`` on Linux (0.25 ms, whatever the size).
So :func:`spawn` starts the program with ``Popen`` and does the rest on the loop: stdin
written once through a pipe transport, stdout read as a :class:`asyncio.StreamReader`, and
the exit learnt from a pidfd (or, where there is none, by polling).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from typing import Sequence

_POLL_S = 0.002  # exit polling where pidfd_open is missing (Linux < 5.3, macOS)


class ChildProcess:
    """A started program: ``stdout`` to read, :meth:`wait` for its status, :meth:`kill`."""

    def __init__(self, popen: subprocess.Popen[bytes], stdout: asyncio.StreamReader,
                 transports: list[asyncio.BaseTransport]) -> None:
        self._popen = popen
        self.stdout = stdout
        self._transports = transports

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def kill(self) -> None:
        if self._popen.poll() is None:
            self._popen.kill()

    async def wait(self) -> int:
        """The exit status, once the program has exited (it is reaped, not left a zombie)."""
        status = self._popen.poll()
        if status is None:
            await _exited(self._popen)
            status = self._popen.wait()
        for transport in self._transports:
            transport.close()
        return status


async def spawn(argv: Sequence[str], *, stdin: bytes) -> ChildProcess:
    """Start ``argv`` with ``stdin`` as its whole input (stderr discarded). Raises OSError
    when the program cannot be started."""
    loop = asyncio.get_running_loop()
    popen = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
    transports: list[asyncio.BaseTransport] = []
    try:
        assert popen.stdin is not None and popen.stdout is not None
        reader = asyncio.StreamReader()
        read_transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                         popen.stdout)
        transports.append(read_transport)
        write_transport, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, popen.stdin)
        transports.append(write_transport)
        write_transport.write(stdin)
        write_transport.close()  # after the buffered input is written: the program sees EOF
    except BaseException:
        for transport in transports:
            transport.close()
        popen.kill()
        popen.wait()  # just killed: exits at once
        raise
    return ChildProcess(popen, reader, transports)


async def _exited(popen: subprocess.Popen[bytes]) -> None:
    try:
        fd = os.pidfd_open(popen.pid)
    except (AttributeError, OSError):
        while popen.poll() is None:
            await asyncio.sleep(_POLL_S)
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(fd, lambda: done.done() or done.set_result(None))
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
