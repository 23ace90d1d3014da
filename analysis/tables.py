"""What `commbench run` prints at the end of a run: a table per op (bench.core.tables), then
what the run found about the nodes (link map), the machine's contention and noise."""
from __future__ import annotations

from analysis.meta_checks import load_checked_meta
from analysis.run_frames import load_summary
from analysis.safe_text import path_text
from analysis.runsamples import RunSamples
from bench import ceilings, contention, noise
from bench.core.tables import format_summary


def print_run(run_dir) -> None:
    """The tables of a run directory, every file checked (analysis.meta_checks, analysis.csv_checks)."""
    meta = load_checked_meta(run_dir)
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
        print(f"# machine: {contention.describe(meta['contention'])}")
    if meta.get("ceilings"):
        print(f"# ceilings: {ceilings.describe(meta['ceilings'])}")
    if meta.get("noise"):
        print(f"# noise: {noise.describe(meta['noise'])}")
    print(f"# results: {path_text(run_dir)}")
