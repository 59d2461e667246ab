"""CPU and memory of a process from /proc (Linux), and core pinning."""

from __future__ import annotations

import os
import resource

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pin(cores: set[int], pid: int = 0) -> bool:
    """Pin a process to cores; False where the machine has too few or pinning is not allowed."""
    if not hasattr(os, "sched_setaffinity") or max(cores) >= (os.cpu_count() or 1):
        return False
    try:
        os.sched_setaffinity(pid, cores)
    except OSError:
        return False
    return True
