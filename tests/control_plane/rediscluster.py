"""A throwaway local Redis Cluster: three masters on free loopback ports in a temp dir.

Started with the machine's redis-server (cluster-enabled yes) and joined with
``redis-cli --cluster create``; stopped (the processes this started, by their handles) and
its files removed afterwards.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    # The cluster bus listens on port + 10000: take ports whose bus port is free too.
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _wait_ok(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        out = subprocess.run(["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True, text=True)
        if "cluster_state:ok" in out.stdout:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the cluster did not become ready: {out.stdout} {out.stderr}")


@contextmanager
def local_cluster(workdir: Path, masters: int = 3) -> Iterator[str]:
    """Yield the ``redis+cluster://`` URL of a fresh cluster."""
    for tool in ("redis-server", "redis-cli"):
        assert shutil.which(tool), f"{tool} is not installed"
    procs: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    try:
        for i in range(masters):
            port = _free_port()
            node = workdir / f"node{i}"
            node.mkdir()
            procs.append(subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000", "--save", "",
                 "--appendonly", "no", "--dir", str(node)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            ports.append(port)
        deadline = time.monotonic() + 20
        for port in ports:
            while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                                 text=True).stdout.strip() != "PONG":
                assert time.monotonic() < deadline, f"redis-server on {port} did not start"
                time.sleep(0.05)
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0",
             "--cluster-yes"], capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stdout + created.stderr
        for port in ports:
            _wait_ok(port, deadline + 20)
        yield f"redis+cluster://127.0.0.1:{ports[0]}/0"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
