"""The processes of one job: who is rank 0, how the other ranks start, and what rank 0 tells them.

A job trains on `trainer.devices x trainer.num_nodes` processes (DDP). Rank 0 alone owns the job's
record (MLflow run, state file); the other ranks only train. Before training, rank 0 decides whether to
resume and from which checkpoint, and publishes that *plan* through a `torch.distributed.TCPStore` that
it hosts; the same store then backs the process group. Other ranks report an error through the store, so
rank 0 can end the run with the real cause.

How the other ranks start:
- under SLURM with one task per device (`hydra/launcher=slurm`), SLURM starts every rank; each runs the
  Hydra job, and ranks other than 0 go straight to `actstudy.cli.worker.run_worker`;
- otherwise rank 0 starts them itself (`python -m actstudy.cli.worker`), on this machine. Lightning's own
  launcher is not used: it re-runs the whole command line, which under Hydra re-runs the whole sweep in
  every child (`-m`) and makes each child compose and track the job again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from actstudy.config.identity import digest
from actstudy.config.schema import ConfigError, RunConfig
from actstudy.errors import error_text
from actstudy.processes.slurm import lightning_environment

log = logging.getLogger("actstudy")

RENDEZVOUS_ENV = "ACTSTUDY_RENDEZVOUS"  # host:port of rank 0's store, set for the ranks rank 0 starts
CONFIG_ENV = "ACTSTUDY_WORKER_CONFIG"  # the resolved config (JSON) of the job, for those ranks
PLAN_KEY = "actstudy/plan"
SEEN_KEY = "actstudy/plan-seen"  # how many other ranks have read the plan
ERROR_KEY = "actstudy/error/"
PLAN_TIMEOUT_S = 600  # how long other ranks wait for rank 0 to check data and open the run


@dataclass(frozen=True)
class World:
    """This process's place in its job: rank, number of processes, and who starts the other ranks."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    started_by: str = "self"  # self (one process) | rank0 (rank 0 starts the others) | slurm | rank0-child

    @property
    def is_zero(self) -> bool:
        """Return True on the process that owns the job's record."""
        return self.rank == 0

    main_address: str = ""  # the rendezvous's host and port, once joined
    main_port: int = 0

    def join(self, rendezvous: Rendezvous, accelerator: str, timeout_s: float) -> World:
        """Join the job's process group through `rendezvous` (gloo on CPUs, nccl on GPUs); return this
        World with the group's address."""
        rendezvous.init_process_group(backend_for(accelerator), timeout_s)
        return dataclasses.replace(self, main_address=rendezvous.host, main_port=rendezvous.port)


SINGLE = World()  # a job of one process


def world_of(cfg: RunConfig) -> World:
    """Return this process's World for the job `cfg` describes; raise ConfigError if it cannot run here."""
    t = cfg.trainer
    size = t.devices * t.num_nodes
    env = os.environ
    if size == 1:
        return World()
    if RENDEZVOUS_ENV in env:  # a rank that rank 0 started
        return World(int(env["RANK"]), size, int(env["LOCAL_RANK"]), t.devices, "rank0-child")
    tasks = int(env.get("SLURM_NTASKS", "1"))
    if tasks > 1:
        if tasks != size:
            raise ConfigError(
                f"trainer.devices x trainer.num_nodes = {size} processes, but this SLURM job has {tasks} "
                "tasks; use hydra/launcher=slurm (one task per device) or match --ntasks"
            )
        return World(int(env["SLURM_PROCID"]), size, int(env.get("SLURM_LOCALID", "0")), t.devices, "slurm")
    if t.num_nodes > 1:
        raise ConfigError(
            f"trainer.num_nodes={t.num_nodes}: several nodes need a cluster launcher; "
            "use hydra/launcher=slurm (or slurm_gpu), which starts one task per device on every node"
        )
    return World(0, size, 0, t.devices, "rank0")


def backend_for(accelerator: str) -> str:
    """Return the torch.distributed backend for the configured accelerator: nccl on GPUs, gloo on CPUs."""
    return "nccl" if on_gpu(accelerator) else "gloo"


def on_gpu(accelerator: str) -> bool:
    """Return whether a job with `trainer.accelerator=accelerator` trains on GPUs (auto: if CUDA is there)."""
    import torch

    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def cpus_available() -> int:
    """Return the CPU cores this process may run on (its affinity, which SLURM and taskset restrict)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_devices(cfg: RunConfig, world: World) -> None:
    """Raise ConfigError unless this machine has the devices the job asks for (checked before any run).

    Jobs whose tasks SLURM placed are not counted against this process's cores: SLURM allotted them.
    """
    import torch

    t = cfg.trainer
    if on_gpu(t.accelerator):
        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if found == 0:
            raise ConfigError(
                f"trainer.accelerator={t.accelerator}: no GPU is visible to PyTorch here; "
                "use trainer.accelerator=cpu (or auto)"
            )
        if t.devices > found:
            raise ConfigError(
                f"trainer.devices={t.devices}: only {found} GPU(s) visible; use at most {found}"
            )
    elif world.started_by != "slurm":
        cores = cpus_available()
        if t.devices > cores:
            raise ConfigError(
                f"trainer.devices={t.devices}: one process per device needs a core each and this machine "
                f"has {cores} available; use trainer.devices <= {cores}"
            )


def busy_cores(window_s: float = 0.25) -> float:
    """Return how many cores other processes kept busy over the last `window_s` seconds (Linux
    `/proc/stat`, this process's own CPU time taken out); 0.0 where that cannot be read."""

    def sample() -> tuple[float, float, float]:
        with open("/proc/stat") as stat:
            fields = [float(v) for v in stat.readline().split()[1:]]
        own = os.times()
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0.0), own.user + own.system

    try:
        total_0, idle_0, own_0 = sample()
        time.sleep(window_s)
        total_1, idle_1, own_1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    ticks = total_1 - total_0
    if ticks <= 0:
        return 0.0
    cores = os.cpu_count() or 1
    busy = (ticks - (idle_1 - idle_0)) / ticks * cores  # all processes' busy cores
    return max(0.0, busy - (own_1 - own_0) / window_s)


def threads_for(
    setting: str,
    world: World,
    concurrent_jobs: int = 1,
    env: Mapping[str, str] = os.environ,
    busy: float = 0.0,
) -> int:
    """Return the intra-op thread count for one process of a job: `trainer.threads` resolved.

    An explicit number is used as it is. `auto`: `OMP_NUM_THREADS` if the user set it, else the CPUs
    SLURM allotted to this task (`SLURM_CPUS_PER_TASK`), else this process's CPU affinity shared by the
    processes this job starts on the node, less the cores other processes keep `busy` (`busy_cores()`,
    for a job that runs alone); either way shared by the jobs a local sweep runs at once. At least 1:
    threads fighting for shared cores run several times slower than one (docs/benchmarks.md: with one
    of 2 cores busy, 2 threads made 0.51x the steps of 1).
    """
    if setting != "auto":
        return int(setting)
    if env.get("OMP_NUM_THREADS", "").isdigit() and int(env["OMP_NUM_THREADS"]) > 0:
        return int(env["OMP_NUM_THREADS"])
    slurm_cpus = env.get("SLURM_CPUS_PER_TASK", "")
    if slurm_cpus.isdigit() and int(slurm_cpus) > 0:
        cpus = int(slurm_cpus)  # this task's own: other tasks of the job have theirs
    else:
        local = world.local_size if world.started_by in ("rank0", "rank0-child") else 1
        cpus = cpus_available() // local
        if concurrent_jobs <= 1 and local == 1:  # a sweep's own jobs are shared out below instead
            cpus = min(cpus, max(1, cpus_available() - round(busy)))
    return max(1, cpus // max(1, concurrent_jobs))


def share_threads(world: World, setting: str = "auto", concurrent_jobs: int = 1) -> int:
    """Set torch's intra-op threads to `threads_for(...)`; return the previous count (to restore it)."""
    import torch

    previous = torch.get_num_threads()
    measure = setting == "auto" and concurrent_jobs <= 1 and "SLURM_CPUS_PER_TASK" not in os.environ
    busy = busy_cores() if measure and "OMP_NUM_THREADS" not in os.environ else 0.0
    torch.set_num_threads(threads_for(setting, world, concurrent_jobs, busy=busy))
    return previous


def restore_threads(count: int) -> None:
    """Set torch's thread count back (the next job of a local sweep runs in the same process)."""
    import torch

    torch.set_num_threads(count)


def is_collective_error(exc: BaseException) -> bool:
    """Return True for an error that only says a collective broke: another rank went away or stalled."""
    import torch.distributed as dist

    markers = ("Connection closed by peer", "Connection reset by peer", "/gloo/", "NCCL", "ProcessGroup")
    return isinstance(exc, dist.DistError) or any(marker in str(exc) for marker in markers)


@dataclass
class Rendezvous:
    """Rank 0's store for one multi-process job: the plan, error reports, and the process group's store."""

    world: World
    host: str
    port: int
    store: Any = None
    workers: list[subprocess.Popen] = field(default_factory=list)

    @classmethod
    def open(cls, world: World) -> Rendezvous:
        """Return the job's rendezvous, hosting the store on rank 0 and connecting to it elsewhere."""
        from torch.distributed import TCPStore

        if world.started_by == "slurm":
            slurm = lightning_environment()
            host, port = slurm.main_address, slurm.main_port
        elif world.started_by == "rank0-child":
            host, port_text = os.environ[RENDEZVOUS_ENV].rsplit(":", 1)
            port = int(port_text)
        else:
            host, port = "127.0.0.1", 0  # rank 0 picks a free port and tells the ranks it starts
        timeout = timedelta(seconds=PLAN_TIMEOUT_S)
        store = TCPStore(host, int(port), None, world.is_zero, timeout, wait_for_workers=False)
        return cls(world, host, store.port, store)

    def start_local_ranks(self, cfg_resolved: dict[str, Any]) -> None:
        """Start ranks 1.. of this job on this machine (`python -m actstudy.cli.worker`)."""
        for rank in range(1, self.world.size):
            env = {
                **os.environ,
                RENDEZVOUS_ENV: f"{self.host}:{self.port}",
                CONFIG_ENV: json.dumps(cfg_resolved),
                "RANK": str(rank),  # world_of reads these two; Lightning gets the rest from the World
                "LOCAL_RANK": str(rank),
            }
            self.workers.append(subprocess.Popen([sys.executable, "-m", "actstudy.cli.worker"], env=env))

    def publish(self, plan: dict[str, Any]) -> None:
        """Rank 0: tell the other ranks what to do (train, resume from a checkpoint)."""
        self.store.set(PLAN_KEY, json.dumps(plan))

    def abort(self, reason: str, wait_s: float = 60.0) -> None:
        """Rank 0: tell the other ranks to stop without training; wait (up to `wait_s`) until they read it.

        Rank 0 hosts the store, so it must outlive their reading it: a rank that cannot reach the store
        keeps retrying for PLAN_TIMEOUT_S.
        """
        self.publish({"abort": reason})
        deadline = time.monotonic() + wait_s
        while self.store.add(SEEN_KEY, 0) < self.world.size - 1 and time.monotonic() < deadline:
            if self.workers and all(proc.poll() is not None for proc in self.workers):
                break
            time.sleep(0.1)

    def wait_for_plan(self) -> dict[str, Any]:
        """Other ranks: return rank 0's plan, waiting for it (an error if rank 0 went away first)."""
        self.store.wait([PLAN_KEY])
        plan = json.loads(self.store.get(PLAN_KEY))
        self.store.add(SEEN_KEY, 1)
        return plan

    def report_error(self, exc: BaseException) -> None:
        """Other ranks: leave the error that stops this rank for rank 0 to record (best effort).

        A broken collective is only a consequence of another rank's failure, so it is marked as such.
        """
        report = {"error": error_text(exc)[:2000], "collective": is_collective_error(exc)}
        with contextlib.suppress(Exception):  # rank 0 is gone: nobody to tell
            self.store.set(f"{ERROR_KEY}{self.world.rank}", json.dumps(report))

    def rank_errors(self) -> list[str]:
        """Rank 0: return 'rank N: error' for every rank that reported an error of its own."""
        errors = []
        for rank in range(1, self.world.size):
            key = f"{ERROR_KEY}{rank}"
            try:
                if self.store.check([key]):
                    report = json.loads(self.store.get(key))
                    if not report["collective"]:
                        errors.append(f"rank {rank}: {report['error']}")
            except Exception:
                break
        return errors

    def init_process_group(self, backend: str, timeout_s: float) -> None:
        """Join the job's process group, backed by this store; collectives give up after `timeout_s`."""
        import torch.distributed as dist

        dist.init_process_group(
            backend, store=self.store, rank=self.world.rank, world_size=self.world.size,
            timeout=timedelta(seconds=timeout_s),
        )  # fmt: skip

    def close(self, grace_s: float = 30.0) -> list[int | None]:
        """Leave the process group, then wait for the ranks rank 0 started (killing them after `grace_s`).

        Returns their exit codes (negative: killed by that signal).
        """
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()  # other ranks blocked in a collective with this one now fail
        deadline = time.monotonic() + grace_s
        for proc in self.workers:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("rank process %d did not stop within %.0f s: killing it", proc.pid, grace_s)
                proc.kill()
                proc.wait()
        return [proc.returncode for proc in self.workers]

    def describe_exit(self, codes: list[int | None]) -> str | None:
        """Return why a started rank stopped abnormally ('rank 1 was killed by signal 9'), or None."""
        for rank, code in enumerate(codes, start=1):
            if code is not None and code < 0:
                return f"rank {rank} was killed by signal {-code}"
        return None


def abort_other_ranks(world: World, reason: str) -> None:
    """Rank 0 of a SLURM-started job that stops before training: let the other tasks stop too, at once."""
    if world.size > 1 and world.is_zero and world.started_by == "slurm":
        Rendezvous.open(world).abort(reason)


def plan_for(resume_from: Path | None, checkpoint_dir: Path, config_digest: str) -> dict[str, Any]:
    """Return rank 0's plan: where checkpoints go, which one to resume from, the config's digest."""
    return {
        "checkpoint_dir": str(checkpoint_dir),
        "resume_from": str(resume_from) if resume_from else None,
        "config_digest": config_digest,
    }


def config_digest(resolved: dict[str, Any]) -> str:
    """Return a short digest of a resolved config, so every rank can check it trains the same job."""
    return digest(resolved)[:16]
