"""A real local Ray cluster for the tests and bench/scale_bench.py: a head and worker nodes started
by `ray start` as separate processes on loopback, each node in a process group of its own, and
all of it killed and its temporary folder removed afterwards.

`ray stop` is not used: it stops every Ray process of the machine, other people's too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[1]
# Ray's sockets live in its temporary folder; their paths must stay under 108 characters.
TEMP_ROOT = "/tmp"
OBJECT_STORE_BYTES = 200_000_000


@dataclass
class RayCluster:
    address: str  # HOST:PORT of the head, as `rag ingest --ray` takes it
    folder: Path
    node_groups: list[int] = field(default_factory=list)  # the process group of each node

    def processes(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process of the cluster: those of its nodes' process groups and
        their descendants (a raylet starts each worker in a process group of the worker's own)."""
        parents, groups = {}, {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            pid = int(stat.parent.name)
            parents[pid], groups[pid] = int(fields[1]), int(fields[2])
        ours = {pid for pid, group in groups.items() if group in self.node_groups}
        while more := {pid for pid, parent in parents.items() if parent in ours and pid not in ours}:
            ours |= more
        found = []
        for pid in sorted(ours):
            with contextlib.suppress(OSError):
                found.append((pid, Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()))
        return found

    def task_workers(self, task: str) -> list[int]:
        """Worker processes running `task` now (Ray titles a worker after the task it runs)."""
        return [pid for pid, command in self.processes() if command.startswith(f"ray::{task}")]


def _ray_command() -> str:
    path = shutil.which("ray", path=str(Path(sys.executable).parent))
    assert path, "ray is installed with the test dependencies (rag[ray])"
    return path


def _environment() -> dict[str, str]:
    # The workers import this checkout's rag, as the driver does; nothing reports usage anywhere.
    # Ray lowers its workers' priority below the driver's by default: on cores shared with the
    # driver that would time the rest of the machine rather than the work.
    python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": python_path, "RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0"}


def _start_node(arguments: list[str], folder: Path, cluster: RayCluster) -> None:
    """One `ray start`, in a new process group that the node's processes keep after it returns."""
    ports = [f"--{name}-port={free_port()}" for name in ("dashboard-agent-listen", "dashboard", "metrics-export", "runtime-env-agent")]
    command = [_ray_command(), "start", *arguments, *ports, "--disable-usage-stats", f"--object-store-memory={OBJECT_STORE_BYTES}"]
    log = folder / f"start-{len(cluster.node_groups)}.log"
    with open(log, "wb") as output:
        starter = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=_environment(), start_new_session=True)
    cluster.node_groups.append(starter.pid)
    if starter.wait(timeout=180) != 0:
        raise RuntimeError(f"`ray start` failed: {log.read_text()[-2000:]}")


def _own_groups(pids: list[int]) -> list[int]:
    """Those of `pids` that lead a process group of their own."""
    leaders = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pid:
                leaders.append(pid)
    return leaders


def _kill_group(group: int, timeout: float = 30) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise RuntimeError(f"processes of the Ray node group {group} outlived SIGKILL")


@contextlib.contextmanager
def running_ray_cluster(head_cpus: int = 1, worker_cpus: tuple[int, ...] = (1,)) -> Iterator[RayCluster]:
    """A head with `head_cpus` CPUs for tasks and one worker node per entry of `worker_cpus`; each
    CPU is one worker process running tasks."""
    folder = Path(tempfile.mkdtemp(prefix="rag-ray-", dir=TEMP_ROOT))
    port = free_port()
    cluster = RayCluster(f"127.0.0.1:{port}", folder)
    try:
        _start_node(
            [
                "--head", "--node-ip-address=127.0.0.1", f"--port={port}", f"--num-cpus={head_cpus}",
                "--include-dashboard=false", f"--ray-client-server-port={free_port()}", f"--temp-dir={folder}",
            ],
            folder,
            cluster,
        )
        for cpus in worker_cpus:
            _start_node([f"--address={cluster.address}", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}"], folder, cluster)
        yield cluster
    finally:
        workers = _own_groups([pid for pid, _ in cluster.processes() if pid not in cluster.node_groups])
        for group in [*reversed(cluster.node_groups), *workers]:
            _kill_group(group)
        shutil.rmtree(folder, ignore_errors=True)
