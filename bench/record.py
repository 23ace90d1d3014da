"""What a measured run records about itself in meta.json beyond the format's own fields
(bench.core.rundir): the steering environment, the timer, how buffers are backed. Only rank 0
writes (through bench.core.rundir.RunWriter)."""
from __future__ import annotations

import os
import platform
import socket
import sys
import time
from pathlib import Path

import numpy as np

from bench.core.rundir import new_meta

ENV_PREFIXES = ("OMPI_", "PMIX_MCA", "PRTE_MCA", "UCX_", "MPICH_", "MPIR_CVAR", "I_MPI_", "FI_",
                "HCOLL_", "NCCL_", "GLOO_", "TORCH_NCCL", "TORCH_DISTRIBUTED", "CUDA_VISIBLE",
                "SLURM_JOB", "SLURM_NTASKS", "OMP_NUM_THREADS", "MPIEXEC")


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
    }
