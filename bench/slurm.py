"""`commbench sweep --slurm`: the sweep as one Slurm batch job, one job step (srun) per rank
count, each an ordinary `commbench run` writing DIR/n<count> on the shared file system. The
script is written to DIR/sweep.sbatch, submitted with `sbatch --wait`, and the sweep ends with
the job. Runs on the submitting host only (standard library)."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from bench.core.errors import UsageError

DEFAULT_SRUN = ["srun", "--mpi=pmix"]  # PMIx: see bench/README.md (pmi2 gives singletons)


def require_sbatch() -> str:
    """sbatch's path; UsageError (one line) where there is no Slurm."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise UsageError("--slurm: no Slurm here (sbatch not on PATH); run the sweep without "
                         "--slurm, or from a Slurm login node")
    return sbatch


def srun_command(env=None) -> list[str]:
    """`MPIEXEC` when it is an srun command line (the README's `MPIEXEC="srun --mpi=pmix"`),
    else srun with PMIx."""
    env = os.environ if env is None else env
    words = shlex.split(env.get("MPIEXEC", ""))
    return words if words and Path(words[0]).name == "srun" else list(DEFAULT_SRUN)


def check_ranks_per_node(counts: list[int], ranks_per_node: int | None) -> None:
    if ranks_per_node is None:
        return
    if ranks_per_node < 1:
        raise UsageError(f"--ranks-per-node must be at least 1, got {ranks_per_node}")
    odd = [p for p in counts if p % ranks_per_node]
    if odd:
        raise UsageError(f"--ranks-per-node {ranks_per_node}: {odd[0]} ranks do not fill whole "
                         "nodes")


def batch_script(root: Path, counts: list[int], run_options: list[str], srun: list[str],
                 python: str = sys.executable, ranks_per_node: int | None = None) -> str:
    """A batch script with one step per rank count: the job asks for the largest count of
    tasks (with ranks_per_node: count / ranks_per_node nodes of ranks_per_node tasks each, so
    the counts are node counts); a step whose run reports bad input (2) ends the job, since
    every count would; the job's exit status is the worst of its runs'."""
    q = shlex.quote
    check_ranks_per_node(counts, ranks_per_node)
    size = ([f"#SBATCH --nodes={max(counts) // ranks_per_node}",
             f"#SBATCH --ntasks-per-node={ranks_per_node}"] if ranks_per_node else
            [f"#SBATCH --ntasks={max(counts)}"])
    lines = ["#!/bin/bash", *size, "#SBATCH --job-name=commbench-sweep",
             f"#SBATCH --output={q(str(root / 'slurm-%j.out'))}",
             "# written by `commbench sweep --slurm`: one job step per rank count", "worst=0"]
    for p in counts:
        place = (["-N", str(p // ranks_per_node), f"--ntasks-per-node={ranks_per_node}"]
                 if ranks_per_node else [])
        argv = [*srun, "-n", str(p), *place, python, "-m", "bench.cli", "run",
                "--out", str(root / f"n{p}"), *run_options]
        lines += [f"echo {q(f'commbench sweep: {p} ranks -> ' + str(root / f'n{p}'))} >&2",
                  " ".join(map(q, argv)),
                  'rc=$?; [ "$rc" -eq 2 ] && exit 2; [ "$rc" -gt "$worst" ] && worst=$rc']
    return "\n".join(lines + ['exit "$worst"']) + "\n"


def submit_and_wait(script: Path, sbatch_options: list[str], quiet: bool = False) -> tuple[int, str]:
    """sbatch --wait the script; (the job's exit status as commbench's: 0, 1, 2, else 3 for a
    job that failed or was cancelled; the job id). UsageError when sbatch is missing or refuses
    the job."""
    argv = [require_sbatch(), "--wait", "--parsable", *sbatch_options, str(script)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None  # stdout=PIPE
    first = proc.stdout.readline().strip()  # --parsable: "JOBID[;CLUSTER]" once submitted
    job_id = first.split(";")[0]
    if job_id and not quiet:
        print(f"commbench sweep: submitted Slurm job {job_id} ({script}); waiting for it",
              file=sys.stderr)
    try:
        _, err = proc.communicate()
    except BaseException:  # Ctrl-C: the job stays queued; say how to stop it
        proc.kill()
        if job_id:
            print(f"commbench sweep: Slurm job {job_id} keeps running; stop it with scancel "
                  f"{job_id}", file=sys.stderr)
        raise
    if not job_id.isdigit():
        last = (err.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise UsageError(f"sbatch refused the sweep: {last}")
    rc = proc.returncode
    return (rc if rc in (0, 1, 2) else 3), job_id
