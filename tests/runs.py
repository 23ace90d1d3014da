"""Run directories in tests.

Synthetic ones, written without ranks: `synthetic_samples`, `synthetic_meta` and
`write_synthetic_run` (the CSV schema, one complete run); `small_samples` and `write_small_run` (a
small one every analysis verb reads); `write_replicated_run` (one with rounds);
`write_run_with_ceilings` (one as `commbench run` writes it, with its ceilings).

What the tests of `commbench run` on real ranks share: the backends they are parametrised over
(each skipped where its library is missing, each in the `ranks` tier), the check that a run
directory holds a complete, validated run, environments that hide a package from the ranks, and
a long run in the background with its ranks' PIDs."""
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.run_frames import summarize_samples, write_run_dir_from_frames
from analysis.runsamples import load_run
from bench.core.rundir import SAMPLE_COLUMNS, SCHEMA_CSV
from tests.conftest import ROOT, commbench_env, needs_mpi, needs_torch

# The backends of tests that are the same for mpi and gloo, and the library each one needs
# (which the other does not: a test may hide it from the other backend's ranks).
BACKENDS = [pytest.param("mpi", marks=needs_mpi),
            pytest.param("gloo", marks=[needs_torch, pytest.mark.ranks])]
LIBRARY = {"mpi": "mpi4py", "gloo": "torch"}


def check_complete(out, nranks, ops, backends):
    """A complete run on one host: every backend measured every op in `ops`, no element failed
    validation, and every summary row has samples, a positive median inside its interval."""
    meta, samples, summary = load_run(out)
    assert meta["status"] == "complete" and meta["nranks"] == nranks and meta["nnodes"] == 1
    assert len(meta["hosts"]) == nranks
    assert set(summary.backend) == set(backends)
    for be in backends:
        assert set(summary[summary.backend == be].op) == set(ops), be
    assert (summary.wrong == 0).all() and (summary.samples >= 1).all()
    assert (summary.median_s > 0).all()
    assert (summary.ci_low_s <= summary.median_s).all() and (summary.median_s <= summary.ci_high_s).all()
    return meta, samples, summary


def env_without(tmp_path, name, **extra):
    """commbench_env with package `name` shadowed by one that cannot be imported."""
    pkg = tmp_path / "poison" / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"raise ImportError('{name} must not be needed here')\n")
    env = commbench_env(**extra)
    env["PYTHONPATH"] = str(tmp_path / "poison") + ":" + env["PYTHONPATH"]
    return env


# ---- runs on real ranks, in the background -------------------------------------------------
def start_long_run(out, *extra):
    """`commbench run` of about a minute into `out`, in the background (stderr piped)."""
    return subprocess.Popen([sys.executable, "-m", "bench.cli", "run", "--ops", "allreduce",
                             "--sizes", "4:1M:2", "--budget", "60", "--min-samples", "4000",
                             "--sample-time", "0.0002",  # a case lasts ~1 s, well under --timeout
                             "--max-samples", "5000", "--launches", "1", "--no-noise",
                             "--no-ceilings", "-q",
                             "--out", str(out), *extra], env=commbench_env(), cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)


def rank_pids(out) -> list[int]:
    """PIDs of the ranks of the run into `out` (not the launcher or the local parent)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(out).encode() in cmd and any(e.startswith(b"OMPI_COMM_WORLD_RANK=") for e in env):
            rank = next(int(e.split(b"=")[1]) for e in env if e.startswith(b"OMPI_COMM_WORLD_RANK="))
            pids.append((rank, int(proc.name)))
    return [pid for _, pid in sorted(pids)]


def wait_for_samples(proc, out):
    """Until the run into `out` has written its first samples (at most 60 s)."""
    deadline = time.monotonic() + 60
    while not (out / "samples.bin").exists() or (out / "samples.bin").stat().st_size == 0:
        if proc.poll() is not None:
            pytest.fail(f"the run ended ({proc.returncode}) before a case: {proc.stderr.read()[-2000:]}")
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.2)


# ---- synthetic run directories --------------------------------------------------------------
def synthetic_samples(cases, seconds, *, rounds=1, samples=5, nranks=2, backend="mpi", calls=1,
                      dtype="float32") -> pd.DataFrame:
    """The samples of a synthetic run: for each (op, nbytes) of `cases`, round, sample and rank,
    in that order (so a seeded generator inside `seconds` draws the same numbers every time), one
    row of seconds(op, nbytes, round, sample, rank)."""
    rows = [(backend, op, dtype, nbytes, nranks, "all", rnd, s, rank, calls,
             seconds(op, nbytes, rnd, s, rank))
            for op, nbytes in cases for rnd in range(rounds) for s in range(samples)
            for rank in range(nranks)]
    return pd.DataFrame(rows, columns=SAMPLE_COLUMNS)


def synthetic_meta(path, nranks, **fields) -> dict:
    """meta.json of a complete synthetic run in the CSV schema (samples.csv), named after its
    directory; `fields` add to it or replace."""
    return {"schema": SCHEMA_CSV, "run_id": Path(path).name, "status": "complete", "nranks": nranks,
            **fields}


def write_synthetic_run(path, samples: pd.DataFrame, summary=None, nranks=None, **fields) -> Path:
    """A complete synthetic run directory from a frame of samples: meta.json from synthetic_meta
    (nranks: the samples' largest, 2 where there are none), summary.csv from summarize_samples
    unless `summary` is given."""
    if nranks is None:
        nranks = int(samples["nranks"].max()) if len(samples) else 2
    summary = summarize_samples(samples) if summary is None else summary
    return write_run_dir_from_frames(path, synthetic_meta(path, nranks, **fields), samples, summary)


SMALL_SIZES = [8, 64, 512, 4096, 32768]


def small_samples(ops=("allreduce",), rounds=2, samples=5, nranks=2, backend="mpi", seed=0,
                  noise=0.02, scale=None, calls=4) -> pd.DataFrame:
    """A small sweep (SMALL_SIZES) that every analysis verb can read: time = (2 µs + S / 5 GB/s)
    x scale(op, nbytes, round) x lognormal noise (sigma `noise`), on every rank."""
    rng = np.random.default_rng(seed)

    def time(op, nbytes, rnd, s, rank):
        base = (2e-6 + nbytes / 5e9) * (scale(op, nbytes, rnd) if scale else 1.0)
        return base * float(np.exp(rng.normal(0, noise)))

    return synthetic_samples([(op, n) for op in ops for n in SMALL_SIZES], time, rounds=rounds,
                             samples=samples, nranks=nranks, backend=backend, calls=calls)


def write_small_run(path, df=None, **meta) -> Path:
    """A complete run of `df` (small_samples() by default) on one host, node-a; `meta` adds to
    meta.json or replaces."""
    df = small_samples() if df is None else df
    nranks = int(df["nranks"].max()) if len(df) else 2
    fields = {"nnodes": 1, "hosts": ["node-a"] * nranks, "backend": {"name": "mpi"}, "ops": {}, **meta}
    return write_synthetic_run(path, df, nranks=fields.pop("nranks", nranks), **fields)


def write_replicated_run(path, rounds=5, samples=20, scale=None, noise=0.03, seed=0,
                         ops=("allreduce",), backend="mpi", nranks=2) -> Path:
    """A run with rounds enough to replicate (compare's unit): small_samples, 10 calls a sample."""
    df = small_samples(ops, rounds=rounds, samples=samples, nranks=nranks, backend=backend, seed=seed,
                       noise=noise, scale=scale, calls=10)
    return write_synthetic_run(path, df, nranks=nranks, backend={"name": backend}, ops={})


def write_run_with_ceilings(path, nranks=2, sizes=(4096, 4 << 20, 128 << 20), rate=4e9, meta_extra=None,
                            ops=("allreduce",), backend="mpi") -> Path:
    """A synthetic run directory as `commbench run` writes it, summary rows with their ceiling
    and efficiency (bench.ceilings.columns): time = 2 µs + S / rate."""
    from bench import ceilings
    from bench.core.run_writer import write_run_dir
    from bench.ops import OPS

    df = synthetic_samples([(op, n) for op in ops for n in sizes],
                           lambda op, n, rnd, s, rank: (2e-6 + n / rate) * (1 + 0.001 * s),
                           nranks=nranks, backend=backend)
    summary = summarize_samples(df, bus_factor=lambda op, n: OPS[op].bus_factor(n) or float("nan"))
    meta = synthetic_meta(path, nranks, nnodes=1, started="2026-11-27T10:00:00+00:00",
                          ceilings={"method": "synthetic", "copy_one_core_Bps": 5e9,
                                    "hosts": {"vm": {"ranks": nranks, "copy_node_Bps": 8e9, "nics": []}}})
    meta.update(meta_extra or {})
    records = summary.to_dict("records")
    for r in records:
        r["ceiling"], r["efficiency"] = ceilings.columns(r, OPS[r["op"]], meta)
    write_run_dir(path, meta, df.to_dict("records"), records)
    return path
