"""Child processes that do not stop the event loop while they start.

uvloop spawns through libuv, which ``fork()``s: the whole loop waits while the kernel copies
the parent's page tables, longer the bigger the process (measured here: 4 ms at 50 MiB,
14 ms at 300 MiB, 37 ms at 1 GiB), and every call's audio waits with it. The standard
library's :class:`subprocess.Popen` uses ``vfork()`` on Linux (0.25 ms, whatever the size).
So :func:`spawn` starts the program with ``Popen`` and does the rest on the loop: stdin
written through a non-blocking pipe, stdout fed into an :class:`asyncio.StreamReader`, and
the exit learnt from a pidfd (or, where there is none, by polling).

The pipes are watched with ``add_reader``/``add_writer``, not handed to the loop as pipe
transports: uvloop's pipe transport closes the descriptor itself but leaves the file object
it was given owning the same number when ``connect_*_pipe`` is cancelled or fails, and that
file object's finaliser later closes whatever socket has reused the number (seen in the
100-call bench: one call's TTS socket closed, and another call's bytes read in its place).
Here the file objects are the only owners and are closed exactly once, after the loop has
stopped watching them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Sequence

_POLL_S = 0.002  # exit polling where pidfd_open is missing (Linux < 5.3, macOS)
_READ_BYTES = 1 << 16


class ChildProcess:
    """A started program: ``stdout`` to read, :meth:`wait` for its status, :meth:`kill`."""

    def __init__(self, popen: subprocess.Popen[bytes], stdin: bytes, loop: asyncio.AbstractEventLoop) -> None:
        assert popen.stdin is not None and popen.stdout is not None
        self._popen = popen
        self._loop = loop
        self.stdout = asyncio.StreamReader()
        self._pending = memoryview(stdin)
        self._stdin_watched = False
        os.set_blocking(popen.stdout.fileno(), False)
        os.set_blocking(popen.stdin.fileno(), False)
        loop.add_reader(popen.stdout.fileno(), self._on_readable)
        self._write_input()

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
        """The exit status, once the program has exited (it is reaped, not left a zombie).
        The pipes are closed then: read ``stdout`` first."""
        status = self._popen.poll()
        if status is None:
            await _exited(self._popen)
            status = self._popen.wait()
        self._close_stdin()
        self._close_stdout()
        return status

    def _write_input(self) -> None:
        stdin = self._popen.stdin
        assert stdin is not None
        try:
            while self._pending:
                written = os.write(stdin.fileno(), self._pending)
                self._pending = self._pending[written:]
        except BlockingIOError:  # the pipe is full: go on when the program has read some
            if not self._stdin_watched:
                self._loop.add_writer(stdin.fileno(), self._write_input)
                self._stdin_watched = True
            return
        except OSError:
            pass  # the program stopped reading (exited): its status tells why
        self._close_stdin()  # all written: the program sees end of input

    def _on_readable(self) -> None:
        stdout = self._popen.stdout
        assert stdout is not None
        try:
            data = os.read(stdout.fileno(), _READ_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            self._close_stdout()
            self.stdout.set_exception(exc)
            return
        if data:
            self.stdout.feed_data(data)
        else:
            self._close_stdout()

    def _close_stdin(self) -> None:
        stdin = self._popen.stdin
        if stdin is None or stdin.closed:
            return
        if self._stdin_watched:
            self._loop.remove_writer(stdin.fileno())
            self._stdin_watched = False
        self._pending = memoryview(b"")
        try:
            stdin.close()
        except OSError:
            pass  # a broken pipe while flushing: nothing of ours was buffered there

    def _close_stdout(self) -> None:
        stdout = self._popen.stdout
        if stdout is None or stdout.closed:
            return
        self._loop.remove_reader(stdout.fileno())  # before close: the number may be reused at once
        stdout.close()
        if not self.stdout.at_eof() and self.stdout.exception() is None:
            self.stdout.feed_eof()


async def spawn(argv: Sequence[str], *, stdin: bytes) -> ChildProcess:
    """Start ``argv`` with ``stdin`` as its whole input (stderr discarded). Raises OSError
    when the program cannot be started. Nothing here awaits: a cancellation cannot leave a
    started program half attached."""
    loop = asyncio.get_running_loop()
    popen = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
    try:
        return ChildProcess(popen, stdin, loop)
    except BaseException:
        popen.kill()
        popen.wait()  # just killed: exits at once
        for pipe in (popen.stdin, popen.stdout):
            if pipe is not None and not pipe.closed:
                loop.remove_reader(pipe.fileno())  # (False when not watched)
                loop.remove_writer(pipe.fileno())
                pipe.close()
        raise


async def _exited(popen: subprocess.Popen[bytes]) -> None:
    try:
        fd = os.pidfd_open(popen.pid)
    except (AttributeError, OSError):
        while popen.poll() is None:
            await asyncio.sleep(_POLL_S)
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
