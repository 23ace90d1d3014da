"""Which world this process is in: the launcher that started it (mpiexec, srun, torchrun or
commbench's own), its rank and size, and how a torch backend's ranks meet (rendezvous). Read
by the ranks and by the command layer; starts no process (bench.spawn does that)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from bench.core.errors import UsageError

# Set by commbench's local launcher in every rank's environment: the launching process owns the
# run directory (it checked and locked it) and shows the run's tables at the end.
LOCAL_PARENT = "COMMBENCH_LOCAL_PARENT"


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
            said = {name: env[name] for name in (rank, size, local) if name in env}
            try:
                world = World(launcher, int(env[rank]), int(env.get(size, 0) or 0),
                              int(env.get(local, 0) or 0))
            except ValueError:  # a launch that cannot be told apart from none: refuse it
                raise UsageError(f"{_assignments(said)}: a {launcher} launch, but not whole numbers; "
                                 "fix or unset them") from None
            if world.rank < 0 or world.size < 0 or world.size and world.rank >= world.size:
                raise UsageError(f"{_assignments(said)}: a {launcher} launch, but rank {world.rank} is "
                                 f"not one of {world.size} ranks; fix or unset them")
            return world
    return None


def _assignments(variables: dict) -> str:
    """NAME='value' ... as a shell would set them, for messages."""
    return " ".join(f"{name}={value!r}" for name, value in variables.items())


def free_port(host: str = "") -> int:
    """A TCP port free right now (the OS picks it); whoever binds it next should be quick."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def rendezvous(world: World, env=None, agree=None) -> dict:
    """init_process_group arguments for this rank. Under torchrun (and commbench's own
    launcher, which sets the same variables): env://, which also reuses torchrun's store.
    Under mpirun or srun: MASTER_ADDR/MASTER_PORT when both are set, else rank 0's host and a
    free port that agree() returns (bench.backends.mpi.agree_address: agreed through MPI;
    None where mpi4py is missing), else an error saying what to set."""
    env = os.environ if env is None else env
    if world.launcher == "torchrun":
        return {"init_method": "env://"}
    if env.get("MASTER_ADDR") and env.get("MASTER_PORT"):
        addr, port = env["MASTER_ADDR"].strip(), env["MASTER_PORT"].strip()
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"MASTER_PORT={env['MASTER_PORT']!r}: not a TCP port (1-65535)")
        if not addr or any(c.isspace() or c in "/@" for c in addr):
            raise UsageError(f"MASTER_ADDR={env['MASTER_ADDR']!r}: not a host name or address")
        port = int(port)
    else:
        if agree is None:
            raise UsageError(f"a torch backend under {world.launcher} needs MASTER_ADDR and "
                             "MASTER_PORT set (or mpi4py, to agree on them through MPI)")
        addr, port = agree()
    host = f"[{addr}]" if ":" in addr else addr
    return {"init_method": f"tcp://{host}:{port}", "rank": world.rank, "world_size": world.size}


