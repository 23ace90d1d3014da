"""Per-step communication time of a workload (analysis.workload): every row predicted from
fitted models (analysis.predict_op, analysis.predict_hierarchical), measured rows read from
the runs of `--measure` (OUT/measure/GROUP, one `commbench run` per group), and their sums —
total, and exposed (the rows frameworks do not overlap with compute) — per group and per op.

A row's time per step is count × the op's time. Predictions carry predict's interval; sums add
the lows and the highs (an interval for the sum that assumes nothing about how the rows' errors
cancel). Measured rows carry the 95% interval of the median.

Where a group sits (--ranks-per-node R, ranks placed as Megatron places them, node = rank // R):
inside one node, from intra-node fits (split `intra`) when the fits have them, else the flat
fit; across nodes, allreduce hierarchically (predict with ranks_per_node = the group's ranks per
node); one rank per node, from inter-node fits (split `inter`); anything else across nodes falls
back to the flat fit at the group's size, and says so. pp rows are one message between
adjacent stages (pingpong of 2 ranks, T·D apart).
"""
from __future__ import annotations

import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from analysis.transformer_layout import ITEMSIZE, Layout, scaled
from analysis.transformer_output import aligned
from analysis.transformer_schedule import Row, Spec, measured_size, schedule
from bench.core.errors import UsageError
from bench.core.atomic_write import atomic_write_text
from bench.core.rundir import csv_text
from bench.core.units import format_time

TIME_COLUMNS = ["nranks", "phase", "op", "group", "group_size", "nbytes", "count", "overlap",
                "source", "time_s", "low_s", "high_s", "step_s", "step_low_s", "step_high_s",
                "model"]


@dataclass
class Timed:
    """One row's time per op (seconds) with its interval, where it came from, and notes."""
    time_s: float
    low_s: float
    high_s: float
    model: str
    notes: list = field(default_factory=list)

    def per_step(self, row: Row) -> tuple[float, float, float]:
        return self.time_s * row.count, self.low_s * row.count, self.high_s * row.count


def members_per_node(size: int, stride: int, ranks_per_node: int) -> int:
    """Ranks of one group (group:size:stride, the one holding rank 0) on its fullest node."""
    return max(Counter(i * stride // ranks_per_node for i in range(size)).values())


def pick_backend(backends, wanted: str | None, what: str) -> str:
    backends = sorted(set(backends))
    if wanted:
        if wanted not in backends:
            raise UsageError(f"{what} hold no backend {wanted!r}; have {', '.join(backends)}")
        return wanted
    if len(backends) > 1:
        raise UsageError(f"{what} hold several backends ({', '.join(backends)}): give --backend")
    if not backends:
        raise UsageError(f"{what} hold nothing")
    return backends[0]


def predict_row(fits, backend: str, row: Row, lay: Layout, ranks_per_node) -> Timed | str:
    """The row's time per op from the fits, or why there is none."""
    from analysis.predict_hierarchical import HIERARCHY, predict_level
    from analysis.predict_op import predict

    size, stride = lay.groups()[row.group]
    op, nbytes = row.op, row.nbytes
    n = 2 if op == "pingpong" else size  # pingpong: one boundary, adjacent stages
    q = members_per_node(n, stride, ranks_per_node) if ranks_per_node else None
    splits = set(fits.split)
    notes = []
    try:
        got = None
        if q is None or q >= n:  # one node, or no node information
            if q is not None and "intra" in splits:
                got = predict_level(fits, op, n, nbytes, "intra")
            got = got or predict(fits, op, n, nbytes, backend)
        else:
            if op in HIERARCHY and q > 1 and "inter" in splits:
                got = predict(fits, op, n, nbytes, backend, ranks_per_node=q)
            elif q == 1 and "inter" in splits:
                got = predict_level(fits, op, n, nbytes, "inter")
            if got is None:
                got = predict(fits, op, n, nbytes, backend)
                why = ("no inter-node fits" if "inter" not in splits
                       else f"no two-level model of {op}")
                notes.append(f"spans {-(-n // q)} nodes but {why}: the flat fit at {n} ranks")
    except UsageError as exc:
        return str(exc)
    if not (all(math.isfinite(t) for t in (got.time_s, got.low_s, got.high_s))
            and got.time_s > 0 and got.low_s >= 0):
        return f"the fits give no finite positive time (model {got.model})"
    return Timed(got.time_s, got.low_s, got.high_s, got.model, notes + list(got.warnings))


def load_measured(spec: Spec, wanted: str | None):
    """{row key: Timed} from the runs of --measure, and a line saying what they are."""
    from analysis.run_frames import load_summary

    found: dict = {}
    backends, dtypes = set(), set()
    frames = {}
    for group in dict.fromkeys(r.group for r in spec.rows):
        run = spec.out / "measure" / group
        if (run / "summary.csv").exists():
            frames[group] = load_summary(run)
            backends |= set(frames[group].backend)
    if not frames:
        return found, "no measured runs"
    backend = wanted if wanted in backends else sorted(backends)[0]
    for r in spec.rows:
        s = frames.get(r.group)
        if s is None:
            continue
        s = s[(s.backend == backend) & (s.op == r.op) & (s.nranks == r.group_size)]
        for dtype in s.dtype.unique():
            hit = s[(s.dtype == dtype) & (s.nbytes == measured_size(r, ITEMSIZE.get(dtype, 4)))]
            if len(hit):
                h = hit.iloc[0]
                lo, hi = (float(h[c]) if h[c] == h[c] else float(h.median_s)
                          for c in ("ci_low_s", "ci_high_s"))
                found[r.key()] = Timed(float(h.median_s), lo, hi, "measured")
                dtypes.add(dtype)
                break
    return found, (f"measured in {spec.out / 'measure'} (backend {backend}, "
                   f"{', '.join(sorted(dtypes)) or 'no matching cases'})")


# ---------------------------------------------------------------- sums and printing
@dataclass
class Sums:
    total: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    exposed: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    by_group: dict = field(default_factory=dict)
    by_op: dict = field(default_factory=dict)
    missing: int = 0


def sums(rows: list[Row], timed: dict) -> Sums:
    out = Sums()
    for r in rows:
        t = timed.get(r.key())
        if not isinstance(t, Timed):
            out.missing += 1
            continue
        step = t.per_step(r)
        targets = [out.total, out.by_group.setdefault(r.group, [0.0] * 3),
                   out.by_op.setdefault(r.op, [0.0] * 3)]
        if not r.overlap:
            targets.append(out.exposed)
        for acc in targets:
            for i in range(3):
                acc[i] += step[i]
    return out


def interval(t) -> str:
    return f"{format_time(t[0])} [{format_time(t[1])}, {format_time(t[2])}]"


def table(rows: list[Row], columns: list[tuple[str, dict]]) -> str:
    """The rows with one per-step time column per (title, {row key: Timed or reason})."""
    modelled = any(not t.startswith("measured") for t, _ in columns)
    head = ["phase", "op", "group", "size", "S", "count", "overlap"] + [t for t, _ in columns] \
        + (["model"] if modelled else [])
    body = []
    for r in rows:
        cells = r.cells()
        model = ""
        for _title, timed in columns:
            t = timed.get(r.key())
            if isinstance(t, Timed):
                step = t.per_step(r)
                cells.append(format_time(step[0]) if t.model == "measured" else interval(step))
                if t.model != "measured":
                    model = t.model
            else:
                cells.append("-")
        body.append(cells + ([model] if modelled else []))
    return aligned(head, body, {3, 4, 5})


def summary_lines(columns: list[tuple[str, dict]], rows: list[Row]) -> list[str]:
    lines = []
    for title, timed in columns:
        s = sums(rows, timed)
        fmt = (lambda t: format_time(t[0])) if title.startswith("measured") else interval
        lines.append(f"{title}: total {fmt(s.total)}, exposed {fmt(s.exposed)}"
                     + (f" ({s.missing} row(s) without a time, left out)" if s.missing else ""))
        lines.append("  per group: " + ", ".join(f"{g} {fmt(v)}" for g, v in s.by_group.items()))
        lines.append("  per op: " + ", ".join(f"{o} {fmt(v)}" for o, v in s.by_op.items()))
    return lines


def notes_of(rows: list[Row], timed: dict) -> list[str]:
    out: dict = {}
    for r in rows:
        t = timed.get(r.key())
        where = f"{r.phase} {r.op} {r.group}"
        for note in (t.notes if isinstance(t, Timed) else [f"no prediction: {t}"] if t else []):
            out.setdefault(note, []).append(where)
    return [f"  note ({'; '.join(dict.fromkeys(w))}): {n}" for n, w in out.items()]


def time_records(rows: list[Row], timed: dict, nranks: int, source: str) -> list[dict]:
    out = []
    for r in rows:
        t = timed.get(r.key())
        if not isinstance(t, Timed):
            continue
        step = t.per_step(r)
        out.append(dict(nranks=nranks, phase=r.phase, op=r.op, group=r.group,
                        group_size=r.group_size, nbytes=r.nbytes, count=r.count,
                        overlap=r.overlap, source=source, time_s=t.time_s, low_s=t.low_s,
                        high_s=t.high_s, step_s=step[0], step_low_s=step[1], step_high_s=step[2],
                        model=t.model))
    return out


# SimAI-Analytical's busbw file (its docs/Tutorial.md, example/busbw.yaml): a name line, then
# per section the busbw in GB/s of each op ("null": none given); EP's allgather and
# reducescatter are the expert-data-parallel group's (DP_EP), its alltoall the ep group's.
SIMAI_SECTIONS = {"TP": {op: "tp" for op in ("allreduce", "allgather", "reduce_scatter", "alltoall")},
                  "DP": {op: "dp" for op in ("allreduce", "allgather", "reduce_scatter", "alltoall")},
                  "EP": {"allreduce": "edp", "allgather": "edp", "reduce_scatter": "edp",
                         "alltoall": "ep"}}
SIMAI_OP_NAMES = {"allreduce": "allreduce", "allgather": "allgather",
                  "reduce_scatter": "reducescatter", "alltoall": "alltoall"}


def simai_busbw(rows: list[Row], timed: dict) -> str:
    """The busbw per (group, op) of the row with the largest S (the bandwidth regime), as
    commbench computes busbw (nccl-tests' factors), in SimAI's busbw.yaml layout."""
    from bench.ops import OPS

    best: dict = {}  # (group, op) -> (nbytes, busbw in B/s)
    for r in rows:
        t = timed.get(r.key())
        if not isinstance(t, Timed) or not t.time_s > 0:
            continue
        factor = OPS[r.op].bus_factor(r.group_size) if r.op in OPS else 1.0
        rate = r.nbytes / t.time_s * (factor or 1.0)
        if r.nbytes >= best.get((r.group, r.op), (-1, 0))[0]:
            best[(r.group, r.op)] = (r.nbytes, rate)

    def value(group, op):
        found = best.get((group, op))
        return f"{found[1] / 1e9:.4g}" if found else "null"

    lines = ["commbench"]
    for section, ops in SIMAI_SECTIONS.items():
        lines.append(f"{section}:")
        lines += [f"{SIMAI_OP_NAMES[op]},: {value(group, op)}" for op, group in ops.items()]
    lines += ["PP:", f"busbw: {value('pp', 'pingpong')}"]
    return "\n".join(lines) + "\n"


def report(spec: Spec, args, measured: bool, file=None) -> None:
    """Print (and write OUT/workload_times.csv) the measured and predicted time per step."""
    file = file or sys.stdout
    rpn = getattr(args, "ranks_per_node", None)
    columns, records = [], []
    if measured:
        got, what = load_measured(spec, getattr(args, "fits_backend", None))
        columns.append(("measured/step", got))
        records += time_records(spec.rows, got, spec.layout.world, "measured")
        print(f"\n{what}", file=file)
    later = None
    if args.fits:
        from analysis.fit_pipeline import load_fits

        fits = load_fits(args.fits, fit_missing=True, command="commbench workload")
        backend = pick_backend(fits.backend, getattr(args, "fits_backend", None),
                               f"the fits of {args.fits}")
        fits = fits[fits.backend == backend]
        predicted = {r.key(): predict_row(fits, backend, r, spec.layout, rpn) for r in spec.rows}
        columns.append(("predicted/step [low, high]", predicted))
        records += time_records(spec.rows, predicted, spec.layout.world, "predicted")
        print(f"\npredicted from the fits of {args.fits} (backend {backend}"
              + (f", {rpn} ranks per node" if rpn else "") + ")", file=file)
        if args.nranks is not None and args.nranks != spec.layout.world:
            lay = scaled(spec.layout, args.nranks)
            rows, _ = schedule(spec.model, lay)
            timed = {r.key(): predict_row(fits, backend, r, lay, rpn) for r in rows}
            records += time_records(rows, timed, lay.world, "predicted")
            later = (lay, rows, timed)
    print(f"per rank and training step, {spec.layout.world} ranks "
          f"(tp {spec.layout.tp}, pp {spec.layout.pp}, dp {spec.layout.dp}):", file=file)
    print(table(spec.rows, columns), file=file)
    for line in summary_lines(columns, spec.rows):
        print(line, file=file)
    for line in notes_of(spec.rows, dict(columns[-1][1]) if args.fits else {}):
        print(line, file=file)
    if later:
        lay, rows, timed = later
        cols = [(f"predicted/step at {lay.world} ranks [low, high]", timed)]
        print(f"\nat {lay.world} ranks (tp {lay.tp}, pp {lay.pp}, dp {lay.dp}):", file=file)
        print(table(rows, cols), file=file)
        for line in summary_lines(cols, rows) + notes_of(rows, timed):
            print(line, file=file)
    if getattr(args, "export", None) == "simai" and columns:
        source_name, timed = columns[0]  # measured where there is a measurement
        path = Path(spec.out) / "busbw.yaml"
        try:
            atomic_write_text(path, simai_busbw(spec.rows, timed))
            print(f"# SimAI busbw ({source_name.split('/')[0]}): {path}", file=file)
        except OSError as exc:
            print(f"commbench workload: cannot write {path} ({exc.strerror or exc})", file=sys.stderr)
    if records:
        try:
            atomic_write_text(Path(spec.out) / "workload_times.csv",
                              csv_text(TIME_COLUMNS, records))
        except OSError as exc:
            print(f"commbench workload: cannot write {spec.out}/workload_times.csv "
                  f"({exc.strerror or exc})", file=sys.stderr)
