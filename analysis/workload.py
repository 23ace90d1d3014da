"""`commbench workload`: the communication of one training step of a transformer (derived by
analysis.transformer_schedule), written to OUT/workload.csv, one row per distinct communication, and
printed with the bytes per step per group. With --fits, every row is predicted from fitted
models (analysis.workload_time); with --measure, bench.workload_runs first runs the rows' cases
on the layout's groups through `commbench run` (measure_runs says which), and the measured
times are printed next to the predicted ones.

The conventions and their formulas are in analysis.transformer_schedule.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from analysis.transformer import Model, load_model, parameter_counts, presets
from analysis.transformer_layout import (DEFAULT_BUCKET, ITEMSIZE, Layout, check_layout, itemsize,
                                         scaled)
from analysis.transformer_output import count_text, csv_of, describe_params, format_table
from analysis.transformer_schedule import Spec, bytes_by, measured_size, schedule
from bench.core.errors import UsageError
from bench.core.atomic_write import atomic_write_text
from bench.core.units import human_bytes, parse_size


# ---------------------------------------------------------------- the command
def add_arguments(p) -> None:
    p.add_argument("--model", required=True, metavar="NAME|FILE.json",
                   help=f"a preset ({', '.join(presets())}) or a JSON file with layers, hidden, "
                   "ffn, heads, kv_heads, vocab (MoE: experts, top_k, moe_layers)")
    p.add_argument("--seq", type=int, default=4096, help="sequence length (default 4096)")
    p.add_argument("--micro-batch", type=int, default=1, help="sequences per micro-batch (default 1)")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step (default 1)")
    p.add_argument("--dtype", default="bfloat16", help="parameters and activations (default "
                   f"bfloat16; known: {', '.join(ITEMSIZE)})")
    p.add_argument("--grad-dtype", help="gradients as reduced (default: --dtype; float32 for "
                   "Megatron's --accumulate-allreduce-grads-in-fp32)")
    for flag, what in (("--tp", "tensor"), ("--pp", "pipeline"), ("--dp", "data"),
                       ("--ep", "expert")):
        p.add_argument(flag, type=int, default=1, help=f"{what}-parallel size (default 1)")
    p.add_argument("--zero", type=int, default=0, help="0 (DDP), 1, 2, 3 (FSDP) (default 0)")
    p.add_argument("--sequence-parallel", action="store_true",
                   help="tensor parallelism with sequence parallelism (all-gather/reduce-scatter)")
    p.add_argument("--bucket", default=DEFAULT_BUCKET,
                   help=f"gradient bucket in bytes, K/M/G binary (default {DEFAULT_BUCKET}, DDP's)")
    p.add_argument("-o", "--out", metavar="DIR",
                   help="directory for workload.csv (default results/workload-<time>-<model>)")
    p.add_argument("--fits", metavar="DIR", help="predict every row from this run or sweep "
                   "directory's fits (fitted now if it has no fits.csv)")
    p.add_argument("--nranks", type=int, help="with --fits: also predict with dp scaled to N ranks")
    p.add_argument("--ranks-per-node", type=int, help="with --fits: ranks per node (groups that "
                   "span nodes are predicted hierarchically or from inter-node fits)")
    p.add_argument("--backend", dest="fits_backend", metavar="NAME",
                   help="with --fits: the backend of the fits, when they hold several")
    p.add_argument("--export", choices=("simai",),
                   help="with --fits or --measure: write OUT/busbw.yaml, the bus bandwidth per "
                   "group and op in SimAI's analytical-mode format")
    p.add_argument("--measure", nargs="...", metavar="RUN_OPTIONS",
                   help="last option: run the rows' cases on the layout's groups (commbench run "
                   "with the options that follow, e.g. -n 4 --budget 0.2; runs go to OUT/measure/GROUP)")


def layout_of(args, model: Model) -> Layout:
    try:
        bucket = parse_size(args.bucket)
    except UsageError as exc:
        raise UsageError(f"--bucket: {exc}") from None
    lay = Layout(tp=args.tp, pp=args.pp, dp=args.dp, ep=args.ep, zero=args.zero,
                 sequence_parallel=args.sequence_parallel, micro_batch=args.micro_batch,
                 seq=args.seq, grad_accum=args.grad_accum, dtype=args.dtype,
                 grad_dtype=args.grad_dtype or args.dtype, bucket=bucket)
    check_layout(model, lay)
    return lay


def prepare(args) -> Spec:
    """Everything checked and derived before anything runs or is written; sets args.out."""
    model = load_model(args.model)
    lay = layout_of(args, model)
    if (args.nranks is not None or args.ranks_per_node is not None) and not args.fits:
        raise UsageError("--nranks and --ranks-per-node go with --fits")
    if args.fits and not Path(args.fits).exists():
        raise UsageError(f"--fits {args.fits}: no such file or directory")
    if args.nranks is not None:
        scaled(lay, args.nranks)
    if args.ranks_per_node is not None and args.ranks_per_node < 1:
        raise UsageError("--ranks-per-node must be at least 1")
    if args.out is not None and not str(args.out).strip():
        raise UsageError("--out: empty path")
    rows, share = schedule(model, lay)
    if args.out is None:
        safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in model.name)
        args.out = str(Path("results") / f"workload-{time.strftime('%Y%m%d-%H%M%S')}-{safe}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    return Spec(model, lay, rows, share, out)


@dataclass(frozen=True)
class MeasureRun:
    """One `commbench run` of --measure: a group's ops and sizes on its communicators (the
    split group:size:stride, bench.nodes), into its own run directory."""
    group: str
    size: int
    stride: int
    ops: tuple
    sizes: tuple
    out: Path


def measure_runs(spec: Spec, dtype: str) -> list[MeasureRun]:
    """The runs that measure the step's distinct cases, one per group, sizes as the run will
    round them for `dtype`."""
    size_of = itemsize(dtype) if dtype in ITEMSIZE else 4
    groups = spec.layout.groups()
    found: dict = {}
    for r in spec.rows:
        ops, sizes = found.setdefault(r.group, ({}, {}))
        ops[r.op] = sizes[measured_size(r, size_of)] = True
    return [MeasureRun(g, *groups[g], tuple(ops), tuple(sorted(sizes)), spec.out / "measure" / g)
            for g, (ops, sizes) in found.items()]


def write(spec: Spec, argv=None) -> None:
    try:
        spec.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(spec.out / "workload.csv", csv_of(spec.rows))
        meta = {"model": asdict(spec.model), "parameters": parameter_counts(spec.model),
                "layout": asdict(spec.layout), "groups": spec.layout.groups(),
                "rank": asdict(spec.share), "argv": ["commbench"] + list(argv or [])}
        atomic_write_text(spec.out / "workload.json", json.dumps(meta, indent=1) + "\n")
    except OSError as exc:
        raise UsageError(f"--out {spec.out}: cannot write it ({exc.strerror or exc})") from None


def print_workload(spec: Spec, file=None) -> None:
    file = file or sys.stdout
    m, lay, share = spec.model, spec.layout, spec.share
    print(f"workload: {m.name}: {describe_params(m)}", file=file)
    print(f"  layout: {lay.describe()}", file=file)
    print(f"  a rank of pipeline stage {share.stage} (of {lay.pp}): {share.layers} "
          f"layer{'s' if share.layers > 1 else ''}"
          + (f" ({share.moe_layers} MoE)" if share.moe_layers else "")
          + f", {count_text(share.dense + share.expert)} parameters", file=file)
    print(f"  {spec.out / 'workload.csv'}: per rank and training step", file=file)
    print(format_table(spec.rows), file=file)
    if not spec.rows:
        print("  (no communication: every group has one rank)", file=file)
        return
    by_group = bytes_by(spec.rows, "group")
    exposed = sum(r.bytes_per_step for r in spec.rows if not r.overlap)
    print("bytes per step per group: " + ", ".join(
        f"{g} {human_bytes(b)}" for g, b in by_group.items())
        + f"; not overlapped with compute: {human_bytes(exposed)}", file=file)


def main(args, argv=None, measured: bool = False) -> int:
    """Derive, write and print; predict with --fits; with `measured`, the runs of --measure
    are in OUT/measure (bench.workload_runs ran them) and are reported next to the prediction."""
    if getattr(args, "export", None) and not (args.fits or measured or args.measure is not None):
        raise UsageError("--export simai needs bandwidths: give --fits DIR or --measure")
    spec = prepare(args)
    write(spec, argv)
    print_workload(spec)
    if args.fits or measured:
        from analysis.workload_time import report

        report(spec, args, measured)
    return 0
