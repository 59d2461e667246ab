"""engine.providers.childproc: programs started with vfork, driven from the loop (uvloop too)."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest
import uvloop

from engine.providers.childproc import spawn

LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}


def run_on(loop_name: str, coro_fn):
    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        return runner.run(asyncio.wait_for(coro_fn(), 20))


def is_reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # not our child any more: waited for already
    return False


@pytest.mark.parametrize("loop_name", LOOPS)
def test_input_goes_in_whole_and_output_comes_out_whole(loop_name):
    data = os.urandom(1_000_000)  # far more than a pipe buffer: the write must not be cut short

    async def body():
        proc = await spawn(["cat"], stdin=data)
        out = await proc.stdout.read()
        return out, await proc.wait(), proc.pid

    out, status, pid = run_on(loop_name, body)
    assert out == data
    assert status == 0
    assert is_reaped(pid)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_exit_status_and_kill(loop_name):
    async def body():
        failing = await spawn(["sh", "-c", "exit 3"], stdin=b"")
        sleeping = await spawn(["sleep", "30"], stdin=b"")
        assert sleeping.returncode is None
        sleeping.kill()
        return await failing.wait(), await sleeping.wait(), sleeping.pid

    failed, killed, pid = run_on(loop_name, body)
    assert failed == 3
    assert killed == -9
    assert is_reaped(pid)


def test_a_missing_program_is_an_os_error():
    async def body():
        with pytest.raises(OSError):
            await spawn(["/nonexistent/program"], stdin=b"")

    run_on("uvloop", body)


def test_a_cancelled_reader_can_kill_and_reap_without_leaking_descriptors():
    async def body():
        warm_up = await spawn(["true"], stdin=b"")  # the loop's own first-use descriptors
        await warm_up.wait()
        await asyncio.sleep(0.05)
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
        return fds_before, len(os.listdir("/proc/self/fd")), pids

    before, after, pids = run_on("uvloop", body)
    assert after <= before
    assert all(is_reaped(pid) for pid in pids)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_writes_a_wav_through_it():
    async def body():
        proc = await spawn(["espeak-ng", "--stdout"], stdin=b"-v is not an option here")
        wav = await proc.stdout.read()
        return wav, await proc.wait()

    wav, status = run_on("uvloop", body)
    assert status == 0 and wav[:4] == b"RIFF" and len(wav) > 8000
