"""What a measured run records about itself in meta.json beyond the format's own fields
(bench.core.rundir): the steering environment, the timer, how buffers are backed. Only rank 0
writes (through bench.core.run_writer.RunWriter)."""
from __future__ import annotations

import os
import platform
import socket
import sys
import time
from pathlib import Path

import numpy as np

from bench.core.rundir import new_meta
from bench.core.runmeta import JOB

ENV_PREFIXES = ("OMPI_", "PMIX_MCA", "PRTE_MCA", "UCX_", "MPICH_", "MPIR_CVAR", "I_MPI_", "FI_",
                "HCOLL_", "NCCL_", "GLOO_", "TORCH_NCCL", "TORCH_DISTRIBUTED", "CUDA_VISIBLE",
                "SLURM_JOB", "SLURM_NTASKS", "SLURM_STEP", "SLURM_TASKS_PER_NODE", "SLURM_NODELIST",
                "SLURM_ARRAY", "SLURM_CLUSTER_NAME", "OMP_NUM_THREADS", "MPIEXEC")


def steering_env(env=None) -> dict:
    env = os.environ if env is None else env
    skip = ("OMPI_COMM_WORLD", "OMPI_UNIVERSE", "OMPI_FILE_LOCATION", "OMPI_MCA_orte_", "OMPI_ARGV",
            "OMPI_APP_CTX", "OMPI_FIRST_RANKS", "OMPI_COMMAND", "OMPI_MCA_ess", "OMPI_MCA_pmix",
            "OMPI_NUM_APP_CTX", "OMPI_MCA_initial_wdir", "OMPI_MCA_mpi_oversubscribe",
            "OMPI_MCA_PREFIXES", "OMPI_LIBDIR_LOC", "OMPI_MCA_cpu_type", "OMPI_MCA_num_procs",
            "OMPI_TOOL_NAME", "OMPI_VERSION", "OMPI_WORLD_", "OMPI_ALLOW_RUN_AS_ROOT",
            "OMPI_MCA_ompi_", "OMPI_MCA_orte", "OMPI_MCA_prte", "OMPI_NUM_", "OMPI_HOME")
    return {k: v for k, v in sorted(env.items())
            if k.startswith(ENV_PREFIXES) and not k.startswith(skip)}


# meta.json → job: the scheduler's identity of the run, from rank 0's environment. The step's
# node list and tasks per node are where the ranks ran (srun); the job's are the allocation.
_SLURM_JOB_FIELDS = (
    ("job_id", "SLURM_JOB_ID"), ("array_job_id", "SLURM_ARRAY_JOB_ID"),
    ("array_task_id", "SLURM_ARRAY_TASK_ID"), ("cluster", "SLURM_CLUSTER_NAME"),
    ("partition", "SLURM_JOB_PARTITION"), ("nodelist", "SLURM_JOB_NODELIST"),
    ("num_nodes", "SLURM_JOB_NUM_NODES"), ("tasks_per_node", "SLURM_TASKS_PER_NODE"),
    ("step_id", "SLURM_STEP_ID"), ("step_nodelist", "SLURM_STEP_NODELIST"),
    ("step_num_nodes", "SLURM_STEP_NUM_NODES"), ("step_tasks_per_node", "SLURM_STEP_TASKS_PER_NODE"),
)


def job_identity(env=None) -> dict | None:
    """The Slurm job this process runs in (job id, node list, tasks per node, and the step's
    when srun started the ranks), as Slurm's variables give them; None outside a job."""
    from bench.world import detect_world

    env = os.environ if env is None else env
    if not env.get("SLURM_JOB_ID"):
        return None
    world = detect_world(env)
    # A step's variables describe the ranks only when srun started them; under mpirun in an
    # allocation they describe the step of mpirun's daemons (one per node).
    by_srun = world is not None and world.launcher in ("slurm", "pmix")
    job = {"scheduler": "slurm", "ranks_started_by": "srun" if by_srun else
           (world.launcher if world else "none")}
    job.update({key: env[var] for key, var in _SLURM_JOB_FIELDS
                if env.get(var) and (by_srun or not key.startswith("step_"))})
    if "tasks_per_node" not in job and env.get("SLURM_JOB_CPUS_PER_NODE"):
        job["cpus_per_node"] = env["SLURM_JOB_CPUS_PER_NODE"]  # salloc without task counts
    return job


def timer_info(clock=time.perf_counter, name="time.perf_counter") -> dict:
    """The clock's declared resolution and the smallest step actually seen between reads."""
    steps = []
    for _ in range(2000):
        a = clock()
        b = clock()
        while b == a:
            b = clock()
        steps.append(b - a)
    return {"name": name, "resolution_s": time.get_clock_info("perf_counter").resolution,
            "measured_resolution_s": float(np.min(steps)),
            "read_cost_s": float(np.median(steps))}


def device_timer_info(start, name="CUDA events", pairs=200) -> dict:
    """--timer cuda: the smallest step seen between two events recorded back to back (its
    resolution) and their median gap; the host clock's own record is kept beside it."""
    gaps = []
    for _ in range(pairs):
        stop = start()
        gaps.append(stop())
    positive = [gap for gap in gaps if gap > 0]
    return {"name": name, "measured_resolution_s": float(min(positive)) if positive else None,
            "read_cost_s": float(np.median(gaps)), "host": timer_info()}


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def buffer_info(page_size: int) -> dict:
    """How buffers are backed; huge pages change large-message results by up to 2x."""
    thp = _read("/sys/kernel/mm/transparent_hugepage/enabled")
    rollup = _read("/proc/self/smaps_rollup")
    anon_huge = next((line.split()[1] for line in rollup.splitlines()
                      if line.startswith("AnonHugePages:")), None)
    return {"allocation": "one arena per rank, anonymous mmap (page aligned), every page written "
                          "before timing; each case's buffers are page-aligned views into it",
            "page_size": page_size, "transparent_hugepages": thp or "unknown",
            "anon_huge_pages_kB_rank0": int(anon_huge) if anon_huge else None}


def base_meta(run_id: str, argv: list[str], settings: dict) -> dict:
    return {
        **new_meta(run_id, argv), "settings": settings,
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__,
                     "platform": platform.platform()},
        "launcher_host": socket.gethostname(),
        "env": steering_env(),
        **({JOB: job} if (job := job_identity()) else {}),
    }
