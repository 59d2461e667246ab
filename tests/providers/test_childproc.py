"""engine.providers.childproc: programs started with vfork, driven from the loop (uvloop too)."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import socket

import pytest

from engine.providers.childproc import spawn


def is_reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # not our child any more: waited for already
    return False


@pytest.mark.asyncio(loop_factories=["uvloop", "asyncio"])
async def test_input_goes_in_whole_and_output_comes_out_whole():
    data = os.urandom(1_000_000)  # far more than a pipe buffer: the write must not be cut short

    proc = await spawn(["cat"], stdin=data)
    out = await proc.stdout.read()
    out, status, pid = out, await proc.wait(), proc.pid

    assert out == data
    assert status == 0
    assert is_reaped(pid)


@pytest.mark.asyncio(loop_factories=["uvloop", "asyncio"])
async def test_exit_status_and_kill():
    failing = await spawn(["sh", "-c", "exit 3"], stdin=b"")
    sleeping = await spawn(["sleep", "30"], stdin=b"")
    assert sleeping.returncode is None
    sleeping.kill()
    failed, killed, pid = await failing.wait(), await sleeping.wait(), sleeping.pid

    assert failed == 3
    assert killed == -9
    assert is_reaped(pid)


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_a_missing_program_is_an_os_error():
    with pytest.raises(OSError):
        await spawn(["/nonexistent/program"], stdin=b"")


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_a_cancelled_reader_can_kill_and_reap_without_leaking_descriptors():
    warm_up = await spawn(["true"], stdin=b"")  # the loop's own first-use descriptors
    await warm_up.wait()
    await asyncio.sleep(0.05)  # the loop's transports close their descriptors on later turns
    fds_before = len(os.listdir("/proc/self/fd"))
    pids = []
    for _ in range(50):
        proc = await spawn(["sleep", "30"], stdin=b"")
        pids.append(proc.pid)
        read = asyncio.ensure_future(proc.stdout.read())
        await asyncio.sleep(0)
        read.cancel()
        proc.kill()
        assert await proc.wait() == -9
    await asyncio.sleep(0.05)  # let closed transports release their descriptors
    before, after, pids = fds_before, len(os.listdir("/proc/self/fd")), pids

    assert after <= before
    assert all(is_reaped(pid) for pid in pids)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_espeak_writes_a_wav_through_it():
    proc = await spawn(["espeak-ng", "--stdout"], stdin=b"-v is not an option here")
    wav = await proc.stdout.read()
    wav, status = wav, await proc.wait()

    assert status == 0 and wav[:4] == b"RIFF" and len(wav) > 8000


@pytest.mark.slow
@pytest.mark.asyncio(loop_factories=["uvloop", "asyncio"])
async def test_cancelling_a_caller_anywhere_never_closes_another_descriptor():
    # uvloop's pipe transports once left a second owner of each pipe descriptor behind when
    # the caller was cancelled while they attached; its finaliser then closed whichever socket
    # had taken the number since. Sockets opened after each cancellation must stay intact.
    async def use(step_count: int) -> None:
        proc = await spawn(["cat"], stdin=b"x" * 200_000)
        try:
            for _ in range(step_count):
                await asyncio.sleep(0)
            await proc.stdout.read()
        finally:
            proc.kill()
            await proc.wait()

    damaged = 0
    # Everything alive before the test is set aside from collection: each gc.collect() below then
    # looks only at what the attempts made (where a stale file object would be), not at the whole
    # test session's heap (about a second per collection, 40 of them).
    gc.freeze()
    try:
        for attempt in range(40):
            task = asyncio.ensure_future(use(attempt % 5))
            for _ in range(attempt % 4):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            pair = socket.socketpair()
            numbers = [s.fileno() for s in pair]
            gc.collect()  # runs any finaliser left holding a stale descriptor number
            for number in numbers:
                try:
                    os.fstat(number)
                except OSError:
                    damaged += 1
            for s in pair:
                s.detach() if damaged else s.close()
    finally:
        gc.unfreeze()
    result = damaged

    assert result == 0
