"""Launcher command lines seen in a tool's output (mpirun, mpiexec, srun, aprun, #SBATCH):
the rank count they give, and the benchmark program they start.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


# ---------------------------------------------------------------- launcher lines
@dataclass(frozen=True)
class Launch:
    """A launcher command line seen in the file: the rank count it gives (None: not said)."""
    line: int
    count: int | None
    how: str           # 'mpirun -np 36', for the report
    program: str = ""  # the benchmark program it starts, when it names one


LAUNCHER = re.compile(r"(?:^|[\s;&|(`'\"$])(mpirun|mpiexec(?:\.\w+)?|orterun|prterun|srun|aprun)"
                      r"(?=\s)(.*)$")
SBATCH = re.compile(r"^#\s*SBATCH\s+(.*)$")
PROGRAM = re.compile(r"(?:^|/)(osu_\w+|\w+_perf(?:_mpi)?|IMB-\w+)$")
COUNT_OPTS = {"-n", "-np", "--n", "--np", "-c"}  # mpirun / mpiexec / aprun: the total
SLURM_COUNT = {"-n", "--ntasks"}


def parse_launch(line_no: int, s: str, job: int | None = None) -> Launch | None:
    """The Launch of a line that runs mpirun, mpiexec, srun or aprun (anywhere in the line: a
    shell prompt, `+ ` of set -x, `time` before it), or None. Only options before the program
    count (after it they are the program's own: nccl-tests' -n is its iteration count). A
    launcher line with no count of its own takes the job's (#SBATCH) when there is one."""
    m = LAUNCHER.search(s)
    if not m:
        return None
    launcher, words = m.group(1), m.group(2).split()
    if not words or not (words[0][0] in "-$./~" or PROGRAM.search(words[0])):
        return None  # 'mpirun noticed that process rank 0 ...': a message, not a command
    program = ""
    for i, w in enumerate(words):
        if found := PROGRAM.search(w):
            program, words = found.group(1), words[:i]
            break
    count = slurm_count(words) if launcher == "srun" else option_count(words, COUNT_OPTS)
    how = f"{launcher} line {line_no}"
    if count is None and job is not None:
        count, how = job, f"{launcher} in an #SBATCH job, line {line_no}"
    return Launch(line_no, count, how, program)


def option_count(words: list, names: set) -> int | None:
    """The value of the last of `names` among words ('-np 4', '-np=4', '-n4')."""
    count = None
    for i, w in enumerate(words):
        key, eq, value = w.partition("=")
        if key in names:
            value = value if eq else (words[i + 1] if i + 1 < len(words) else "")
        elif len(w) > 2 and w[:2] in names and w[2:].isdigit():  # -n4
            value = w[2:]
        else:
            continue
        if value.isdigit() and int(value) > 0:
            count = int(value)
    return count


def slurm_count(words: list) -> int | None:
    """srun / #SBATCH: --ntasks, or --nodes x --ntasks-per-node."""
    count = option_count(words, SLURM_COUNT)
    if count is None:
        nodes, per_node = option_count(words, {"-N", "--nodes"}), option_count(words, {"--ntasks-per-node"})
        if nodes and per_node:
            count = nodes * per_node
    return count
