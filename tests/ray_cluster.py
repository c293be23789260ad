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
        """(pid, command line) of every process of the cluster's nodes."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getpgid(int(entry.name)) in self.node_groups:
                    found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
            except (OSError, ValueError):  # gone meanwhile
                continue
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
    python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": python_path, "RAY_USAGE_STATS_ENABLED": "0"}


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
        for group in reversed(cluster.node_groups):
            _kill_group(group)
        shutil.rmtree(folder, ignore_errors=True)
