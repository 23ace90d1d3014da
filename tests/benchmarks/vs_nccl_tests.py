"""commbench side by side with nccl-tests on one GPU.

Not collected by pytest. On a machine with a CUDA GPU, the project's venv (torch with CUDA,
which brings the pip NCCL, `nvidia.nccl`) and nvcc, from the repository root, as one step:

    .venv/bin/python tests/benchmarks/vs_nccl_tests.py [--out DIR]

It needs nothing installed beyond that. What it does, every step under a timeout:

1. Build nccl-tests (all_reduce_perf, all_gather_perf, reduce_scatter_perf, broadcast_perf,
   alltoall_perf) into `--build` (default build/nccl-tests, ignored by git) unless they are
   already there (`--rebuild` forces it). The source from `--src` (default
   ../shared/tools/nccl-tests-src.tar.gz beside the repository, else shared/tools/ inside it:
   nccl-tests 2.19.6; a tarball, unpacked into BUILD/src, or an untarred folder); NCCL from
   the pip package torch uses (`import nvidia.nccl`, or `--nccl DIR`) through BUILD/nccl_home
   (include -> the package's include, lib/libnccl.so and libnccl.so.2 -> its libnccl.so.2);
   CUDA from nvcc (`$NVCC`, `$CUDA_HOME/bin/nvcc`, nvcc on PATH, /usr/local/cuda/bin/nvcc; the
   toolkit is the one nvcc -dryrun names); the gencode from the GPU's compute capability
   (torch.cuda.get_device_capability: 9.0 -> -gencode=arch=compute_90,code=sm_90):
       make -C SRC/src -jN BUILDDIR=BUILD/bin NCCL_HOME=BUILD/nccl_home CUDA_HOME=...
            NVCC=... NVCC_GENCODE=... BUILD/bin/all_reduce_perf ... BUILD/bin/alltoall_perf
   About 30 s with 16 cores (177 s on 2). A build that fails is reported, and the comparison
   goes on with commbench alone.
2. Run each binary eager and with CUDA graphs, 1 GPU, float32, sum, validation on:
       X_perf -b MIN -e MAX -f FACTOR -g 1 -d float -o sum -c 1 -n ITERS -w WARMUP
              [-G LAUNCHES] -J X.json
   (LD_LIBRARY_PATH on nccl_home/lib and CUDA's lib64), stdout kept as X.log.
3. Run commbench on the same GPU, eager and with --cuda-graph:
       python -m bench.cli run --backend nccl -n 1 --ops OPS --sizes MIN:MAX:FACTOR
           --launches 1 --repeats 1 --budget B --no-noise --no-ceilings --force --out DIR
4. `commbench import` the -J files (a file that is not whole JSON: the stdout log instead),
   one run directory per mode, then `commbench report` over the commbench runs and the
   imports together (one page, runs overlaid).
5. Print one table per mode and write them to OUT/comparison.txt and OUT/comparison.csv:
   op, size, nccl-tests' out-of-place and in-place times (µs) as it prints them (read by
   commbench's importer, analysis.importers.nccl, once per time column), the one
   compared (commbench's allreduce, allgather, reduce_scatter and alltoall are out of place:
   the out-of-place column; broadcast and allreduce_inplace are in place: the in-place
   column), commbench's median (µs), the ratio commbench / nccl-tests, the target, whether it
   is met, and commbench's flags (summary.csv; at 1 rank every row is `no-op`, and a graph
   that captured no GPU work is `empty-graph`).

Targets: at S >= 64 KiB the ratio within 5% (0.95-1.05, both modes); under CUDA graphs below
64 KiB at most 1.3x. In-place ops at 1 rank (broadcast, allreduce_inplace) move nothing, so
their rows show the ratio but are not judged (`moves nothing`).

Options: --sizes MIN:MAX[:FACTOR] (default 4:1G, factor 2), --ops (default allreduce,
allreduce_inplace, allgather, reduce_scatter, broadcast, alltoall), --modes eager,graph,
--gpu N (CUDA_VISIBLE_DEVICES for every step), --iters/--warmup/--graph-launches
(nccl-tests -n/-w/-G), --budget (commbench), --run-args "..." (more commbench run options),
--timeout (seconds per step, default 600), --out DIR (default results/vs-nccl-tests-<time>),
--no-report.

Exit status: 0 every judged row meets its target; 1 a row misses, returns wrong results, has
no partner, or a step failed; 2 nothing was started: no GPU (torch.cuda.is_available() is
false), no nvcc when the build is needed, no source, no pip NCCL, or bad options (one line).

Time: not yet measured on a GPU; the commbench runs dominate (6 ops x 29 sizes x 2 modes at
--budget 0.25 plus calibration and validation: a few minutes); `--sizes 4:1G:4` halves it.
A device machine gets only the checkout: ../shared does not travel, so copy the tarball into
the checkout's shared/tools/ (found there too) or pass --src.

Layout of OUT: comparison.txt, comparison.csv, logs/ (build, each step), nccl-tests/
{eager,graph}/X.{json,log}, run directories commbench-eager, commbench-graph,
nccl-tests-eager, nccl-tests-graph, and report/index.html.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# the description of --help (not the docstring: python -OO strips docstrings)
DESCRIPTION = """commbench side by side with nccl-tests on one GPU (issue 11)."""

BINARIES = ("all_reduce_perf", "all_gather_perf", "reduce_scatter_perf", "broadcast_perf",
            "alltoall_perf")
# commbench op -> (the op nccl-tests' program is imported as, the nccl-tests column it matches)
PAIRS = {
    "allreduce": ("allreduce", "oop"),            # recv.copy_(send) + all_reduce(recv)
    "allreduce_inplace": ("allreduce", "ip"),      # all_reduce(buf)
    "allgather": ("allgather", "oop"),
    "reduce_scatter": ("reduce_scatter", "oop"),
    "broadcast": ("broadcast", "ip"),              # commbench's broadcast is in place
    "alltoall": ("alltoall", "oop"),
}
DEFAULT_OPS = "allreduce,allreduce_inplace,allgather,reduce_scatter,broadcast,alltoall"
IN_PLACE = {"allreduce_inplace", "broadcast"}  # at 1 rank these move nothing
SMALL = 64 << 10           # from this size on: within TOLERANCE of nccl-tests
TOLERANCE = 0.05
GRAPH_SMALL_MAX = 1.3      # below SMALL under CUDA graphs: at most this ratio
MODES = ("eager", "graph")
SRC_PLACES = (REPO.parent / "shared" / "tools" / "nccl-tests-src.tar.gz",  # beside the checkout
              REPO / "shared" / "tools" / "nccl-tests-src.tar.gz")          # or inside it
DEFAULT_SRC = next((p for p in SRC_PLACES if p.exists()), SRC_PLACES[0])
DEFAULT_BUILD = REPO / "build" / "nccl-tests"


class Problem(Exception):
    """Something that stops the script before it starts anything (exit 2, one line)."""


# ---------------------------------------------------------------- pure parts
def size_range(text: str) -> tuple[int, int, int]:
    """MIN:MAX[:FACTOR] (binary suffixes) -> (min, max, factor); nccl-tests scans sizes
    geometrically (-b -e -f), so lists are refused."""
    from bench.core.errors import UsageError
    from bench.core.units import parse_size

    parts = text.strip().split(":")
    if len(parts) not in (2, 3):
        raise Problem(f"--sizes {text!r}: expected MIN:MAX[:FACTOR] (nccl-tests scans -b -e -f)")
    try:
        lo, hi = parse_size(parts[0]), parse_size(parts[1])
    except UsageError as exc:
        raise Problem(f"--sizes: {exc}") from None
    try:
        factor = int(parts[2]) if len(parts) == 3 else 2
    except ValueError:
        raise Problem(f"--sizes {text!r}: FACTOR must be an integer") from None
    if factor < 2 or lo < 1 or lo > hi:
        raise Problem(f"--sizes {text!r}: need 1 <= MIN <= MAX and FACTOR >= 2")
    return lo, hi, factor


def gencode(capability) -> str:
    """nvcc's gencode for a compute capability (major, minor): (9, 0) ->
    -gencode=arch=compute_90,code=sm_90."""
    major, minor = (int(x) for x in capability)
    return f"-gencode=arch=compute_{major}{minor},code=sm_{major}{minor}"


def nccl_tests_argv(binary, sizes: tuple[int, int, int], mode: str, json_path, iters: int = 50,
                    warmup: int = 5, graph_launches: int = 10) -> list[str]:
    """The command line of one nccl-tests binary (2.19.6 flags: src/common.cu's getopt)."""
    lo, hi, factor = sizes
    argv = [str(binary), "-b", str(lo), "-e", str(hi), "-f", str(factor), "-g", "1",
            "-d", "float", "-o", "sum", "-c", "1", "-n", str(iters), "-w", str(warmup)]
    if mode == "graph":
        argv += ["-G", str(graph_launches)]
    return argv + ["-J", str(json_path)]


def nccl_tests_times(parse, text: str, dtype: str = "float32") -> dict:
    """nccl-tests output -> {(op, size): {"oop": µs, "ip": µs, "wrong": n}}, read by commbench's
    importer (analysis.importers.nccl: parse is its parse_json or parse_text) once per time
    column; op is commbench's name of the program, as `commbench import` names it. A column
    the output lacks is NaN. Raises ValueError (UsageError) when the importer takes nothing
    from it. The runs here are not timed per iteration (no -I): one row per op and size."""
    from analysis.importers import nccl

    times = {}
    for key, column in zip(("oop", "ip"), nccl.COLUMNS):
        try:
            # nranks: used only where the output names no ranks (one GPU here)
            rows = parse(text, nranks=1, column=column).rows
        except ValueError:
            if column == nccl.COLUMNS[0]:
                raise
            continue  # no in-place times at all
        for row in rows:
            if row.dtype != dtype:
                continue
            entry = times.setdefault((row.op, row.nbytes),
                                     {"oop": math.nan, "ip": math.nan, "wrong": row.wrong})
            # back to the µs nccl-tests printed (the importer stores seconds)
            entry[key] = round(row.time_s * 1e6, 9)
            entry["wrong"] = row.wrong
    return times


def nccl_tests_json(text: str, dtype: str = "float32") -> dict:
    """nccl-tests -J output (format 2 or 3): nccl_tests_times of the importer's parse_json."""
    from analysis.importers import nccl

    return nccl_tests_times(nccl.parse_json, text, dtype)


def nccl_tests_text(text: str, dtype: str = "float32") -> dict:
    """nccl-tests' printed table(s): nccl_tests_times of the importer's parse_text; {} when
    the importer finds no table in it."""
    from analysis.importers import nccl

    try:
        return nccl_tests_times(nccl.parse_text, text, dtype)
    except ValueError:
        return {}


def read_nccl_tests(json_text: str | None, log_text: str | None) -> tuple[dict, str]:
    """The times of one nccl-tests run: from its -J file when that is whole, else from its
    stdout. Returns (times, which: 'json', 'log' or 'none')."""
    if json_text:
        try:
            times = nccl_tests_json(json_text)
            if times:
                return times, "json"
        except ValueError:
            pass
    if log_text:
        times = nccl_tests_text(log_text)
        if times:
            return times, "log"
    return {}, "none"


def read_summary(text: str, backend: str = "nccl", dtype: str = "float32") -> dict:
    """commbench's summary.csv -> {(op, nbytes): {"us": median µs, "flags": str, "wrong": n,
    "nranks": n}} for the backend and dtype on the whole world (split 'all')."""
    rows = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("backend") != backend or row.get("dtype") != dtype:
            continue
        if (row.get("split") or "all") != "all":
            continue
        rows[(row["op"], int(row["nbytes"]))] = {
            "us": _float(row.get("median_s")) * 1e6,
            "flags": row.get("flags") or "",
            "wrong": _float(row.get("wrong")),
            "nranks": int(row.get("nranks") or 0),
        }
    return rows


def target(mode: str, nbytes: int) -> str:
    """The target of a row: '5%' (ratio within 5%), '1.3x' (at most 1.3x) or '' (none)."""
    if nbytes >= SMALL:
        return "5%"
    if mode == "graph":
        return "1.3x"
    return ""


def moves_nothing(op: str, nranks: int, flags: str = "") -> bool:
    """An op that moves no data here: in place on one rank, or a CUDA graph that captured no
    GPU work (commbench's flag)."""
    return (nranks == 1 and op in IN_PLACE) or "empty-graph" in flags.split(";")


def verdict(ratio: float, tgt: str, wrong: float = 0.0, nothing: bool = False) -> str:
    """'meets', 'MISS: ...', 'WRONG', 'no partner', 'moves nothing' or '' (no target)."""
    if wrong == wrong and wrong > 0:
        return "WRONG"
    if ratio != ratio:
        return "no partner"
    if nothing:
        return "moves nothing"
    if tgt == "5%":
        if abs(ratio - 1) <= TOLERANCE:
            return "meets"
        return "MISS: slower" if ratio > 1 else "MISS: faster"
    if tgt == "1.3x":
        return "meets" if ratio <= GRAPH_SMALL_MAX else "MISS: slower"
    return ""


def pair(mode: str, nccl: dict, commbench: dict, ops) -> list[dict]:
    """Rows of one mode's table: every size either side has, per commbench op, in size order."""
    rows = []
    for op in ops:
        nccl_op, column = PAIRS[op]
        sizes = sorted({s for o, s in nccl if o == nccl_op} | {s for o, s in commbench if o == op})
        for size in sizes:
            n = nccl.get((nccl_op, size), {})
            c = commbench.get((op, size), {})
            ref = n.get(column, math.nan)
            mine = c.get("us", math.nan)
            ratio = mine / ref if ref == ref and mine == mine and ref > 0 else math.nan
            wrong = sum(w for w in (n.get("wrong", 0.0), c.get("wrong", 0.0)) if w == w)
            flags = c.get("flags", "")
            tgt = target(mode, size)
            nothing = moves_nothing(op, c.get("nranks", 1), flags)
            rows.append({"mode": mode, "op": op, "nbytes": size,
                         "nccl_oop_us": n.get("oop", math.nan), "nccl_ip_us": n.get("ip", math.nan),
                         "compared": "in-place" if column == "ip" else "out-of-place",
                         "commbench_us": mine, "ratio": ratio, "target": tgt,
                         "verdict": verdict(ratio, tgt, wrong, nothing), "flags": flags})
    return rows


def misses(rows: list[dict]) -> list[dict]:
    """The rows that fail: a missed target, wrong results, or no partner."""
    return [r for r in rows if r["verdict"].startswith(("MISS", "WRONG", "no partner"))]


def format_table(mode: str, rows: list[dict]) -> str:
    from bench.core.units import human_bytes

    title = {"eager": "eager (nccl-tests plain, commbench default)",
             "graph": "CUDA graphs (nccl-tests -G, commbench --cuda-graph)"}.get(mode, mode)
    head = ["op", "size", "nccl oop us", "nccl ip us", "compared", "commbench us", "ratio",
            "target", "verdict", "flags"]
    body = [[r["op"], human_bytes(r["nbytes"]), _us(r["nccl_oop_us"]), _us(r["nccl_ip_us"]),
             r["compared"], _us(r["commbench_us"]),
             f"{r['ratio']:.3f}" if r["ratio"] == r["ratio"] else "-",
             {"5%": "within 5%", "1.3x": "<= 1.3x"}.get(r["target"], "-"), r["verdict"] or "-",
             r["flags"] or "-"] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)] if body else [len(h) for h in head]
    right = {1, 2, 3, 5, 6}
    lines = [f"{title}: commbench / nccl-tests, 1 GPU, float32"]
    for cells in [head] + body:
        lines.append("  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(cells, widths))).rstrip())
    judged = [r for r in rows if r["target"] and r["verdict"] != "moves nothing"]
    met = sum(r["verdict"] == "meets" for r in judged)
    missed = misses(rows)
    lines.append(f"{mode}: {met} of {len(judged)} judged rows meet their target"
                 + (f"; {len(missed)} fail: " + ", ".join(
                     f"{r['op']} {human_bytes(r['nbytes'])} ({r['verdict']}"
                     + (f", {r['ratio']:.2f}x)" if r["ratio"] == r["ratio"] else ")")
                     for r in missed[:12]) + (" ..." if len(missed) > 12 else "") if missed else ""))
    return "\n".join(lines)


def csv_text(rows: list[dict]) -> str:
    out = io.StringIO()
    cols = ["mode", "op", "nbytes", "nccl_oop_us", "nccl_ip_us", "compared", "commbench_us",
            "ratio", "target", "verdict", "flags"]
    writer = csv.DictWriter(out, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if isinstance(r[k], float) and r[k] != r[k] else r[k]) for k in cols})
    return out.getvalue()


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _us(value: float) -> str:
    if value != value:
        return "-"
    return f"{value:.2f}" if value < 1000 else f"{value:.0f}"


# ---------------------------------------------------------------- the machine
def find_nvcc() -> Path | None:
    """nvcc: $NVCC, $CUDA_HOME/bin/nvcc, on PATH, /usr/local/cuda/bin/nvcc."""
    candidates = [os.environ.get("NVCC")]
    if os.environ.get("CUDA_HOME"):
        candidates.append(str(Path(os.environ["CUDA_HOME"]) / "bin" / "nvcc"))
    candidates += [shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return Path(c)
    return None


def cuda_home(nvcc: Path, timeout: float = 60) -> Path:
    """The toolkit nvcc belongs to: its own _HERE_ (nvcc -dryrun), which sees through wrapper
    scripts, else the folder above the resolved binary's bin/."""
    try:
        out = subprocess.run([str(nvcc), "-dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        for line in (out.stdout + out.stderr).splitlines():
            if line.startswith("#$ _HERE_="):
                return Path(line.split("=", 1)[1].strip()).parent
    except (OSError, subprocess.SubprocessError):
        pass
    return nvcc.resolve().parent.parent


def pip_nccl() -> Path | None:
    """The folder of the pip NCCL (nvidia.nccl: include/nccl.h, lib/libnccl.so.2)."""
    try:
        import nvidia.nccl  # noqa: PLC0415
    except ImportError:
        return None
    for p in list(getattr(nvidia.nccl, "__path__", [])):
        if (Path(p) / "include" / "nccl.h").is_file() and (Path(p) / "lib" / "libnccl.so.2").exists():
            return Path(p)
    return None


def built(bindir: Path) -> bool:
    return all(os.access(bindir / b, os.X_OK) for b in BINARIES)


GPU_QUERY = """import json, torch
ok = torch.cuda.is_available()
print(json.dumps({"torch": torch.__version__, "available": ok,
                  "capability": list(torch.cuda.get_device_capability(0)) if ok else None,
                  "name": torch.cuda.get_device_name(0) if ok else None}))"""


def gpu_info(timeout: float = 180) -> dict:
    """torch's view of the GPU, asked in a child process (so this one holds no CUDA context
    while the benchmarks run); raises Problem when there is none."""
    try:
        proc = subprocess.run([sys.executable, "-c", GPU_QUERY], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Problem(f"no GPU: asking torch about CUDA took over {timeout:.0f} s") from None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise Problem(f"no GPU: torch cannot tell ({why})")
    info = json.loads(lines[-1])
    if not info["available"]:
        raise Problem(f"no GPU: torch {info['torch']}: torch.cuda.is_available() is false; "
                      "run this on a machine with a CUDA GPU")
    return info


def preflight(args) -> dict:
    """What the run needs, checked before anything is started or written; raises Problem."""
    if args.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(args.gpu)  # for the query and every step
    info = gpu_info()
    bindir = args.build / "bin"
    need = {"bindir": bindir, "capability": tuple(info["capability"]), "gpu": info["name"],
            "build": args.rebuild or not built(bindir)}
    nvcc = find_nvcc()
    if nvcc is None and need["build"]:
        raise Problem("no nvcc ($NVCC, $CUDA_HOME/bin, PATH, /usr/local/cuda/bin): it is needed "
                      f"to build nccl-tests into {bindir}")
    need["nvcc"] = nvcc
    need["cuda_home"] = cuda_home(nvcc) if nvcc else None
    need["nccl"] = Path(args.nccl) if args.nccl else pip_nccl()
    if need["nccl"] is None or not (need["nccl"] / "lib" / "libnccl.so.2").exists():
        raise Problem("no pip NCCL: `import nvidia.nccl` finds no include/nccl.h and lib/libnccl.so.2 "
                      "(the NCCL torch uses); give its folder with --nccl")
    if need["build"] and not (args.src.is_file() or (args.src / "src" / "Makefile").is_file()):
        raise Problem(f"no nccl-tests source at {args.src} (a .tar.gz or an untarred folder): "
                      "give it with --src")
    if need["build"] and shutil.which("make") is None:
        raise Problem("no make on PATH: it is needed to build nccl-tests")
    return need


# ---------------------------------------------------------------- steps
def run_step(argv, log: Path, timeout: float, env=None, cwd=None) -> tuple[int, float]:
    """Run a command in its own process group, output to `log`; on timeout the whole group
    gets SIGTERM, then SIGKILL. Returns (exit status, seconds); 124 on timeout."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(str(a) for a in argv) + "\n")
        fh.flush()
        try:
            proc = subprocess.Popen([str(a) for a in argv], stdout=fh, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True)
        except OSError as exc:
            fh.write(f"cannot start: {exc}\n")
            return 127, 0.0
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            fh.write(f"\n[vs_nccl_tests: timed out after {timeout:.0f} s, stopped]\n")
            rc = 124
    return rc, time.monotonic() - start


def tail(log: Path, n: int = 8) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in lines[-n:])


def make_nccl_home(nccl: Path, home: Path) -> Path:
    """A folder nccl-tests' Makefile takes as NCCL_HOME: include -> the package's include,
    lib/libnccl.so and lib/libnccl.so.2 -> the package's libnccl.so.2."""
    lib = home / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    links = {home / "include": nccl / "include",
             lib / "libnccl.so": nccl / "lib" / "libnccl.so.2",
             lib / "libnccl.so.2": nccl / "lib" / "libnccl.so.2"}
    for link, to in links.items():
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.exists():
            shutil.rmtree(link)
        link.symlink_to(to.resolve())
    return home


def source_tree(src: Path, build: Path) -> Path:
    """The nccl-tests folder (holding src/Makefile): `src` itself, or the tarball unpacked
    afresh into build/src."""
    if (src / "src" / "Makefile").is_file():
        return src
    dest = build / "src"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(src) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)  # noqa: S202 (a known tarball; Pythons before the filters)
    found = sorted(p.parent.parent for p in dest.glob("**/src/Makefile")
                   if (p.parent / "common.mk").is_file())
    if not found:
        raise RuntimeError(f"{src}: no nccl-tests tree (src/Makefile, src/common.mk) in it")
    return found[0]


def build_argv(tree: Path, bindir: Path, nccl_home: Path, cuda: Path | None, nvcc: Path | None,
               code: str, jobs: int) -> list[str]:
    argv = ["make", "-C", str(tree / "src"), f"-j{jobs}", f"BUILDDIR={bindir}",
            f"NCCL_HOME={nccl_home}", f"NVCC_GENCODE={code}"]
    if cuda is not None:
        argv.append(f"CUDA_HOME={cuda}")
    if nvcc is not None:
        argv.append(f"NVCC={nvcc}")
    return argv + [str(bindir / b) for b in BINARIES]


def build_nccl_tests(src: Path, build: Path, nccl: Path, nvcc: Path | None, cuda: Path | None,
                     code: str, log: Path, timeout: float = 600, jobs: int | None = None) -> tuple[bool, str]:
    """Build the five binaries into build/bin. Returns (ok, one line)."""
    build = build.resolve()
    bindir = build / "bin"
    try:
        tree = source_tree(src.resolve(), build)
    except (OSError, tarfile.TarError, RuntimeError) as exc:
        return False, f"nccl-tests source: {exc}"
    home = make_nccl_home(nccl, build / "nccl_home")
    argv = build_argv(tree, bindir, home, cuda, nvcc, code, jobs or max(1, os.cpu_count() or 1))
    rc, took = run_step(argv, log, timeout)
    if rc == 0 and built(bindir):
        return True, f"built nccl-tests in {took:.0f} s into {bindir} ({code})"
    return False, f"nccl-tests build failed (exit {rc}, {took:.0f} s; {log}):\n{tail(log)}"


def library_env(nccl_home: Path, cuda: Path | None) -> dict:
    env = dict(os.environ)
    paths = [str(nccl_home / "lib")]
    if cuda is not None:
        paths += [str(cuda / "lib64"), str(cuda / "lib")]
    if env.get("LD_LIBRARY_PATH"):
        paths.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(paths)
    return env


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=DESCRIPTION)
    p.add_argument("--src", type=Path, default=DEFAULT_SRC, help="nccl-tests source: .tar.gz or folder")
    p.add_argument("--build", type=Path, default=DEFAULT_BUILD, help="build folder (bin/, nccl_home/, src/)")
    p.add_argument("--rebuild", action="store_true", help="build even when the binaries are there")
    p.add_argument("--nccl", help="folder of the NCCL to build against (default: pip nvidia.nccl)")
    p.add_argument("--out", type=Path, help="everything written (default results/vs-nccl-tests-<time>)")
    p.add_argument("--sizes", default="4:1G", help="MIN:MAX[:FACTOR] (default 4:1G, factor 2)")
    p.add_argument("--ops", default=DEFAULT_OPS, help=f"commbench ops (default {DEFAULT_OPS})")
    p.add_argument("--modes", default="eager,graph", help="eager, graph or both (default)")
    p.add_argument("--gpu", type=int, help="CUDA_VISIBLE_DEVICES for every step")
    p.add_argument("--iters", type=int, default=50, help="nccl-tests -n (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="nccl-tests -w (default 5)")
    p.add_argument("--graph-launches", type=int, default=10, help="nccl-tests -G (default 10)")
    p.add_argument("--budget", type=float, default=0.25, help="commbench --budget (default 0.25 s)")
    p.add_argument("--run-args", default="", help="more options for commbench run (one string)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per step (default 600)")
    p.add_argument("--no-report", action="store_true", help="skip commbench report")
    p.add_argument("--backend", default="nccl", help=argparse.SUPPRESS)  # gloo: the script's own test on CPU
    args = p.parse_args(argv)
    try:
        sizes = size_range(args.sizes)
        ops = [o.strip() for o in args.ops.split(",") if o.strip()]
        unknown = [o for o in ops if o not in PAIRS]
        if unknown or not ops:
            raise Problem(f"--ops: {','.join(unknown) or 'none'} not among {','.join(PAIRS)}")
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        if not modes or any(m not in MODES for m in modes):
            raise Problem(f"--modes {args.modes!r}: eager, graph or eager,graph")
        need = preflight(args)
    except Problem as exc:
        print(f"vs_nccl_tests: {exc}", file=sys.stderr)
        return 2

    out = (args.out or REPO / "results" / time.strftime("vs-nccl-tests-%Y%m%d-%H%M%S")).resolve()
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    failed = []
    code = gencode(need["capability"])
    print(f"GPU: {need['gpu']} (sm_{''.join(map(str, need['capability']))}); out: {out}", flush=True)

    have_nccl_tests = not need["build"]
    if need["build"]:
        ok, line = build_nccl_tests(args.src, args.build, need["nccl"], need["nvcc"], need["cuda_home"],
                                    code, logs / "build-nccl-tests.log", args.timeout)
        print(line, flush=True)
        have_nccl_tests = ok
        if not ok:
            failed.append("build")
    else:
        print(f"nccl-tests already built in {need['bindir']}", flush=True)
    home = make_nccl_home(need["nccl"], args.build.resolve() / "nccl_home")
    env = library_env(home, need["cuda_home"])
    lo, hi, factor = sizes
    size_arg = f"{lo}:{hi}:{factor}"

    nccl_times = {m: {} for m in modes}
    raw = {m: [] for m in modes}
    if have_nccl_tests:
        programs = sorted({PAIRS[o][0] for o in ops})
        stems = {"allreduce": "all_reduce_perf", "allgather": "all_gather_perf",
                 "reduce_scatter": "reduce_scatter_perf", "broadcast": "broadcast_perf",
                 "alltoall": "alltoall_perf"}
        for mode in modes:
            for prog in programs:
                stem = stems[prog]
                where = out / "nccl-tests" / mode
                where.mkdir(parents=True, exist_ok=True)
                jpath, lpath = where / f"{stem}.json", where / f"{stem}.log"
                if jpath.exists():
                    jpath.unlink()  # nccl-tests will not overwrite: it would write X.json.0
                argv_ = nccl_tests_argv(need["bindir"] / stem, sizes, mode, jpath, args.iters,
                                        args.warmup, args.graph_launches)
                rc, took = run_step(argv_, lpath, args.timeout, env=env)
                jtext = jpath.read_text(errors="replace") if jpath.exists() else None
                times, which = read_nccl_tests(jtext, lpath.read_text(errors="replace"))
                nccl_times[mode].update(times)
                if which == "json":
                    raw[mode].append(jpath)
                elif which == "log":
                    raw[mode].append(lpath)
                print(f"nccl-tests {stem} {mode}: exit {rc}, {took:.0f} s, {len(times)} sizes from {which}",
                      flush=True)
                if rc != 0:
                    failed.append(f"nccl-tests {stem} {mode}")
                    print(tail(lpath), flush=True)

    run_dirs = []
    cb_times = {}
    for mode in modes:
        rdir = out / f"commbench-{mode}"
        argv_ = [sys.executable, "-m", "bench.cli", "run", "--backend", args.backend, "-n", "1",
                 "--ops", ",".join(ops), "--sizes", size_arg, "--dtype", "float32",
                 "--launches", "1", "--repeats", "1", "--budget", str(args.budget),
                 "--no-noise", "--no-ceilings", "--force", "--out", str(rdir)]
        if mode == "graph":
            argv_.append("--cuda-graph")
        argv_ += shlex.split(args.run_args)
        rc, took = run_step(argv_, logs / f"commbench-{mode}.log", args.timeout, cwd=REPO)
        summary = rdir / "summary.csv"
        cb_times[mode] = read_summary(summary.read_text(), args.backend) if summary.is_file() else {}
        print(f"commbench {mode}: exit {rc}, {took:.0f} s, {len(cb_times[mode])} cases", flush=True)
        if summary.is_file():
            run_dirs.append(rdir)
        if rc not in (0, 1):
            failed.append(f"commbench {mode}")
            print(tail(logs / f"commbench-{mode}.log"), flush=True)

    for mode in modes:
        if not raw[mode]:
            continue
        idir = out / f"nccl-tests-{mode}"
        rc, took = run_step([sys.executable, "-m", "bench.cli", "import", *raw[mode], "--force",
                             "--out", idir], logs / f"import-{mode}.log", args.timeout, cwd=REPO)
        print(f"commbench import nccl-tests {mode}: exit {rc} ({idir})", flush=True)
        if rc == 0:
            run_dirs.append(idir)
        else:
            failed.append(f"import {mode}")
            print(tail(logs / f"import-{mode}.log"), flush=True)

    if run_dirs and not args.no_report:
        rc, took = run_step([sys.executable, "-m", "bench.cli", "report", *run_dirs, "--out",
                             out / "report"], logs / "report.log", args.timeout, cwd=REPO)
        print(f"commbench report: exit {rc}, {took:.0f} s ({out / 'report' / 'index.html'})", flush=True)
        if rc != 0:
            failed.append("report")
            print(tail(logs / "report.log"), flush=True)

    all_rows, texts = [], []
    for mode in modes:
        rows = pair(mode, nccl_times[mode], cb_times.get(mode, {}), ops)
        all_rows += rows
        texts.append(format_table(mode, rows))
    text = "\n\n".join(texts)
    if failed:
        text += "\n\nsteps that failed: " + ", ".join(failed) + f" (logs in {logs})"
    (out / "comparison.txt").write_text(text + "\n")
    (out / "comparison.csv").write_text(csv_text(all_rows))
    print("\n" + text, flush=True)
    return 1 if failed or misses(all_rows) else 0


if __name__ == "__main__":
    sys.exit(main())
