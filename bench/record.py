"""Writing a run directory (format: results/README.md). Only rank 0 writes. Every finished
case is on disk at once: samples are appended in one write, the summary and metadata are
replaced atomically, so a crash loses at most the case in progress."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import sys
import time
from pathlib import Path

import numpy as np

from analysis.rundir import SCHEMA, SUMMARY_COLUMNS, WRITTEN_SAMPLE_COLUMNS, atomic_write_text

ENV_PREFIXES = ("OMPI_", "PMIX_MCA", "PRTE_MCA", "UCX_", "MPICH_", "MPIR_CVAR", "I_MPI_", "FI_",
                "HCOLL_", "NCCL_", "GLOO_", "TORCH_NCCL", "TORCH_DISTRIBUTED", "CUDA_VISIBLE",
                "SLURM_JOB", "SLURM_NTASKS", "OMP_NUM_THREADS", "MPIEXEC")


def new_run_id(backends: str, nranks: int) -> str:
    return f"{dt.datetime.now():%Y%m%d-%H%M%S}-{backends.replace(',', '+')}-n{nranks}"


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
    from bench import __version__

    return {
        "schema": SCHEMA, "commbench": __version__, "run_id": run_id, "argv": list(argv),
        "status": "running", "started": dt.datetime.now(dt.timezone.utc).isoformat(),
        "finished": None, "settings": settings,
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__,
                     "platform": platform.platform()},
        "launcher_host": socket.gethostname(),
        "env": steering_env(),
    }


class RunWriter:
    def __init__(self, out_dir: Path, meta: dict):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.meta = meta
        self.samples_path = self.dir / "samples.csv"
        if not self.samples_path.exists():
            self.samples_path.write_text(",".join(WRITTEN_SAMPLE_COLUMNS) + "\n")
        self.write_meta()

    def write_meta(self, **updates) -> None:
        self.meta.update(updates)
        atomic_write_text(self.dir / "meta.json", json.dumps(self.meta, indent=2, default=str) + "\n")

    def append_samples(self, rows: list[tuple]) -> None:
        text = "".join(",".join(_fmt(v) for v in row) + "\n" for row in rows)
        fd = os.open(self.samples_path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, text.encode())  # one write: a crash leaves at most a torn last line
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_summary(self, rows: list[dict]) -> None:
        """Rows in one order whoever writes them: backend, op (registry order), split, S."""
        from bench.ops import OPS

        order = {name: i for i, name in enumerate(OPS)}
        rows = sorted(rows, key=lambda r: (r["backend"], order.get(r["op"], len(order)),
                                           r["split"], r["nbytes"]))
        lines = [",".join(SUMMARY_COLUMNS)]
        lines += [",".join(_fmt(row.get(c, "")) for c in SUMMARY_COLUMNS) for row in rows]
        atomic_write_text(self.dir / "summary.csv", "\n".join(lines) + "\n")

    def finish(self, status: str, **extra) -> None:
        self.write_meta(status=status, finished=dt.datetime.now(dt.timezone.utc).isoformat(), **extra)


def _fmt(value) -> str:
    if isinstance(value, float):
        return repr(value) if value == value else ""
    return str(value)
