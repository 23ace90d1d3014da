"""What `commbench run` prints at the end of a run: a table per op (bench.core.tables), then
what the run found about the nodes (link map), the machine's contention and noise."""
from __future__ import annotations

from analysis.rundir import load_meta, load_summary, shown
from analysis.runsamples import RunSamples
from bench.core.runmeta import describe_ceilings, describe_contention, describe_noise
from bench.core.tables import format_summary


def print_run(run_dir) -> None:
    """The tables of a run directory, every file checked (analysis.rundir)."""
    meta = load_meta(run_dir)
    summary = load_summary(run_dir)
    nodes = (meta.get("nnodes") or 1) > 1 or "pairs" in (meta.get("ops") or {})
    text = ""
    if nodes:  # every sample read and checked before anything is printed
        from analysis.links import describe

        text = describe(RunSamples(run_dir, meta), meta)
    print(format_summary(summary.to_dict("records"), meta))
    if text:
        print(text)
    if meta.get("contention"):
        print(f"# machine: {describe_contention(meta['contention'])}")
    if meta.get("ceilings"):
        print(f"# ceilings: {describe_ceilings(meta['ceilings'])}")
    if meta.get("noise"):
        print(f"# noise: {describe_noise(meta['noise'])}")
    print(f"# results: {shown(run_dir)}")
