"""The native timed loop of the mpi backend: an op's program(k) run in compiled code.

An op declares its calls once, with the backend's prepared primitives (bench.ops). Every
step of a program can say what it does: the mpi backend's primitives carry `desc` =
(primitive name, *the arguments the op gave), and the program builders of bench.ops.loops carry
the structure (`program.steps`; a step with desc ("window", W, posts) or ("spin", seconds)).
`assemble` turns such a program into a flat list of instructions (8 int64 each, the codes of
loop.c), and NativeProgram runs that list k times in one foreign call, in
loop.c compiled against the MPI library mpi4py uses. A program that is not describable in full
stays a Python loop.

Building: with the mpicc of the MPI in use ($MPICC if set; else the one beside the Python;
else the first on PATH), at first use, into a cache keyed by the source, the compiler, the
MPI library and its version (`$XDG_CACHE_HOME/commbench/native`, else
`~/.cache/commbench/native`; `$COMMBENCH_CACHE` overrides). The library is compiled under a
temporary name and renamed into place, so ranks (or nodes sharing a home directory) that build
at once never load a half-written file. Loading checks that the handles the build sees
(MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_DOUBLE) are the ones mpi4py hands out, so a build
against another MPI's header is refused, not run.

Only the standard library and numpy: this runs in every rank.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SOURCE = Path(__file__).with_name("loop.c")
LIBRARY_NAME = "commbench_loop.so"
ABI = 1          # CB_ABI of loop.c
WORDS = 8        # int64 words per instruction
BUILD_TIMEOUT_S = 120

# Instruction codes (loop.c's enum)
SEND, RECV, ISEND, IRECV, WAITALL = 1, 2, 3, 4, 5
ALLREDUCE, ALLGATHER, REDUCE_SCATTER, ALLTOALL, BCAST, BARRIER = 6, 7, 8, 9, 10, 11
SPIN, REPEAT = 12, 13
IN_PLACE = -1    # ALLREDUCE's send buffer for MPI_IN_PLACE
INT_MAX = 2**31 - 1


def find_mpicc(env=None) -> tuple[str | None, str]:
    """(path of the mpicc to use, where it came from) or (None, why there is none). $MPICC,
    when set, is the only candidate: pointing it elsewhere is how a user picks (or hides) one."""
    env = os.environ if env is None else env
    given = env.get("MPICC")
    if given:
        found = shutil.which(given, path=env.get("PATH"))
        if found:
            return found, "MPICC"
        return None, f"MPICC={given} is not an executable"
    beside = Path(sys.executable).parent / "mpicc"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside), "beside the Python"
    found = shutil.which("mpicc", path=env.get("PATH"))
    if found:
        return found, "PATH"
    return None, "no mpicc (set MPICC, or put the MPI's mpicc on PATH)"


def cache_root(env=None) -> Path:
    env = os.environ if env is None else env
    if env.get("COMMBENCH_CACHE"):
        return Path(env["COMMBENCH_CACHE"]) / "native"
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "commbench" / "native"


def loaded_libmpi() -> str:
    """Path of the libmpi this process has mapped (Linux), '' when unknown."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if line.count("/") else ""
                if "/libmpi" in path and ".so" in path:
                    return os.path.realpath(path)
    except OSError:
        pass
    return ""


@dataclass(frozen=True)
class Build:
    """Where the library of this MPI and source lives (built or not)."""
    mpicc: str
    path: Path

    @property
    def command(self) -> list[str]:
        return [self.mpicc, "-O2", "-fPIC", "-shared", "-o", "<out>", str(SOURCE)]


def plan_build(library_version: str, env=None) -> tuple[Build | None, str]:
    """(Build, '') for the MPI of this process, or (None, why not)."""
    mpicc, where = find_mpicc(env)
    if mpicc is None:
        return None, where
    try:
        source = SOURCE.read_bytes()
        st = os.stat(mpicc)
    except OSError as exc:
        return None, f"cannot read {exc.filename}: {exc.strerror}"
    h = hashlib.sha256(source)
    for part in (os.path.realpath(mpicc), st.st_size, st.st_mtime_ns, library_version,
                 loaded_libmpi(), platform.machine(), ABI):
        h.update(b"\0" + str(part).encode())
    key = h.hexdigest()[:20]
    return Build(mpicc, cache_root(env) / key / LIBRARY_NAME), ""


def ensure_built(build: Build) -> str:
    """Compile the library unless the cache holds it. Returns '' or why it could not."""
    if build.path.is_file():
        return ""
    try:
        build.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=build.path.parent)
        os.close(fd)
    except OSError as exc:
        return f"cannot write the cache {build.path.parent}: {exc.strerror}"
    argv = [tmp if a == "<out>" else a for a in build.command]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        if r.returncode != 0:
            lines = [ln for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
            return f"{os.path.basename(build.mpicc)} failed: {lines[0] if lines else r.returncode}"
        os.chmod(tmp, 0o755)
        os.replace(tmp, build.path)  # atomic: a concurrent loader sees all or nothing
        return ""
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{os.path.basename(build.mpicc)} did not run: {exc}"
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class NativeLib:
    """The loaded library: cb_run and the spin calibration."""

    def __init__(self, path: Path, mpicc: str = ""):
        self.path, self.mpicc = str(path), mpicc
        lib = ctypes.CDLL(self.path)  # CDLL releases the GIL: the watchdog thread keeps running
        self.cb_run = lib.cb_run
        self.cb_run.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                ctypes.c_int64]
        self.cb_run.restype = ctypes.c_int
        self.cb_handles = lib.cb_handles
        self.cb_handles.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self.cb_calibrate_spin = lib.cb_calibrate_spin
        self.cb_calibrate_spin.argtypes = [ctypes.c_int64, ctypes.c_int]
        self.cb_calibrate_spin.restype = ctypes.c_int64
        self.spin_overshoot_ns = 0

    def handles(self) -> list[int]:
        """(MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_DOUBLE, sizeof(MPI_Comm), sizeof(MPI_Request),
        MPI_VERSION, ABI) as this build sees them."""
        out = np.zeros(8, dtype=np.int64)
        self.cb_handles(out.ctypes.data, 8)
        return [int(v) for v in out]

    def calibrate_spin(self, seconds: float = 10e-6, trials: int = 21) -> int:
        """Measure the busy wait's overshoot (median of `trials` waits) and shorten every later
        spin by it. The overshoot of a clock_gettime spin is a clock read or two, whatever
        the wait, so a short trial stands for all."""
        self.spin_overshoot_ns = int(self.cb_calibrate_spin(int(seconds * 1e9), trials))
        return self.spin_overshoot_ns


def load(build: Build, expected_handles: list[int]) -> tuple[NativeLib | None, str]:
    """(the library, '') when it loads and sees the handles mpi4py gives (COMM_WORLD, FLOAT,
    SUM, DOUBLE), else (None, why)."""
    try:
        lib = NativeLib(build.path, build.mpicc)
    except (OSError, AttributeError) as exc:
        return None, f"cannot load {build.path}: {exc}"
    got = lib.handles()
    size = got[4]
    mask = (1 << (8 * size)) - 1 if 0 < size < 8 else (1 << 64) - 1
    if got[7] != ABI:
        return None, f"{build.path} is of another version (ABI {got[7]}, expected {ABI})"
    if [g & mask for g in got[:4]] != [e & mask for e in expected_handles]:
        return None, (f"{os.path.basename(build.mpicc)} ({build.mpicc}) builds for another MPI "
                      "than mpi4py uses (its handles differ); set MPICC to the mpicc of that MPI")
    lib.calibrate_spin()
    return lib, ""


# ---------------------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------------------
def as_int64(value: int) -> int:
    """A handle or address as a signed 64-bit word."""
    value = int(value) & ((1 << 64) - 1)
    return value - (1 << 64) if value >= 1 << 63 else value


class NotDescribable(Exception):
    """A step that says nothing of what it does: the program stays a Python loop."""


def assemble(steps, primitive, descriptor_of=None) -> tuple[np.ndarray, int]:
    """(instructions, most requests in flight) for a program of `steps`; raises NotDescribable.
    `primitive(desc)` gives the instruction (a list of ints, code first) of a backend primitive's
    descriptor, or raises NotDescribable. `descriptor_of(step)` gives a step's descriptor (default:
    its `desc` attribute; a backend may know steps that cannot carry one)."""
    rows: list[list[int]] = []
    maxreq = 0
    descriptor_of = descriptor_of or (lambda step: getattr(step, "desc", None))

    def emit(step, in_window=False):
        nonlocal maxreq
        desc = descriptor_of(step)
        if not desc:
            raise NotDescribable(repr(step))
        kind = desc[0]
        if kind == "spin":
            rows.append([SPIN, max(0, round(desc[1] * 1e9))])
        elif kind == "window":
            times, posts = desc[1], desc[2]
            for post in posts:
                at = len(rows)
                rows.append([REPEAT, times, 0])
                emit(post, in_window=True)
                rows[at][2] = len(rows) - at - 1
                if rows[at][2] != 1:
                    raise NotDescribable("a window post must be one non-blocking call")
            rows.append([WAITALL])
            maxreq = max(maxreq, times * len(posts))
        else:
            row = primitive(desc)
            if (row[0] in (ISEND, IRECV)) != in_window:
                raise NotDescribable(f"{kind} outside a window" if not in_window else
                                     f"{kind} inside a window")
            rows.append(row)

    for step in steps:
        emit(step)
    counts = {SEND: (2,), RECV: (2,), ISEND: (2,), IRECV: (2,), ALLREDUCE: (3,),
              ALLGATHER: (2, 4), REDUCE_SCATTER: (3,), ALLTOALL: (2, 4), BCAST: (2,)}
    if any(i < len(row) and row[i] > INT_MAX for row in rows for i in counts.get(row[0], ())):
        raise NotDescribable("a count beyond a C int (loop.c has no large-count calls)")
    code = np.zeros((len(rows), WORDS), dtype=np.int64)
    for i, row in enumerate(rows):
        code[i, :len(row)] = [as_int64(v) for v in row]
    return code, maxreq


class NativeProgram:
    """program(k) as one call of cb_run: the k calls of a sample in compiled code."""
    loop = "native"

    def __init__(self, lib: NativeLib, comm_handle: int, code: np.ndarray, maxreq: int,
                 steps=(), error=RuntimeError):
        self.lib, self.code, self.steps = lib, code, steps  # the steps hold the buffers
        self._run = lib.cb_run
        self._args = (as_int64(comm_handle), code.ctypes.data, len(code), maxreq)
        self._error = error

    def __call__(self, k):
        comm, prog, n, maxreq = self._args
        rc = self._run(comm, prog, n, k, maxreq)
        if rc:
            raise self._error(rc)
