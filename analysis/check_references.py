"""The references `commbench check` sets runs against: the figures shipped in
analysis/expected.csv (each with its source and date), thresholds stated on the command line
(--min OP:SIZE=RATE) and the user's own baseline runs."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.errors import UsageError
from bench.core.units import parse_size

EXPECTED = Path(__file__).with_name("expected.csv")
KINDS = ("minimum", "typical", "baseline")


@dataclass
class Reference:
    """One expected figure: busbw of `op` (at `nbytes`, or its peak over sizes when None)."""
    system: str
    hardware: str
    op: str
    busbw_Bps: float
    kind: str
    source: str
    date: str
    nranks: int | None = None
    nbytes: int | None = None
    per: str = ""                 # 'nic': per NIC of a node (x --nics)
    bound_Bps: float = math.nan   # a line rate busbw of this algorithm cannot exceed
    algorithm: str = ""
    match: dict = field(default_factory=dict)  # baseline: the exact case it belongs to


def load_expected(path: Path = EXPECTED) -> list[Reference]:
    """The shipped figures (analysis/expected.csv), checked: every row names its source."""
    refs = []
    with open(path, encoding="utf-8", newline="") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            try:
                ref = Reference(
                    system=row["system"], hardware=row["hardware"], op=row["op"],
                    busbw_Bps=float(row["busbw_Bps"]), kind=row["kind"], source=row["source"],
                    date=row["date"], nranks=int(row["nranks"]) if row["nranks"] else None,
                    nbytes=int(row["nbytes"]) if row["nbytes"] else None, per=row["per"],
                    bound_Bps=float(row["bound_Bps"]) if row["bound_Bps"] else math.nan,
                    algorithm=row["algorithm"])
            except (KeyError, ValueError) as exc:
                raise RuntimeError(f"{path}: line {i}: {exc}") from None
            if ref.kind not in KINDS[:2] or not ref.source or not ref.date or not ref.busbw_Bps > 0:
                raise RuntimeError(f"{path}: line {i}: needs a kind, a source, a date and a figure")
            refs.append(ref)
    return refs


def systems(refs) -> dict:
    """{system: hardware} in the order of the table."""
    out: dict = {}
    for r in refs:
        out.setdefault(r.system, r.hardware)
    return out


def expected_for(system: str) -> list[Reference]:
    refs = load_expected()
    chosen = [r for r in refs if r.system == system]
    if not chosen:
        raise UsageError(f"--expect: no such system {system!r}; known: {', '.join(systems(refs))} "
                         "(commbench check --list shows them with their sources)")
    return chosen


def parse_rate(text: str) -> float:
    """busbw in bytes/s: bench.core.units.parse_rate ('460G' = 4.6e11, '800MB/s')."""
    from bench.core.units import parse_rate as rate_of

    return rate_of(text)


def parse_min(text: str) -> Reference:
    """--min OP:SIZE=RATE as a 'minimum' reference."""
    from analysis.known_ops import FOREIGN_OPS, known_op
    from bench.ops import OPS

    where, eq, rate = text.rpartition("=")
    op_name, colon, size = where.partition(":")
    if not (eq and colon and op_name.strip() and size.strip()):
        raise UsageError(f"--min {text!r}: expected OP:SIZE=RATE, e.g. allreduce:16G=460G")
    op = known_op(op_name.strip())
    if op is None:
        raise UsageError(f"--min {text!r}: no such op {op_name.strip()!r}; known: "
                         f"{', '.join([*OPS, *FOREIGN_OPS])}")
    if not op.sized:
        raise UsageError(f"--min {text!r}: {op.name} moves no data, so it has no busbw")
    nbytes = parse_size(size)
    return Reference(system="--min", hardware="stated on the command line", op=op.name,
                     busbw_Bps=parse_rate(rate), kind="minimum", nbytes=nbytes,
                     source=f"--min {text.strip()} (command line)", date="")


def baseline_references(run_dirs) -> list[Reference]:
    """One reference per case of the baseline runs: the median of their busbw."""
    import numpy as np

    from analysis.meta_checks import load_checked_meta
    from analysis.run_frames import load_summary

    found: dict = {}
    names = []
    for run_dir in run_dirs:
        meta = load_checked_meta(run_dir)
        names.append(f"{run_dir} ({meta.get('run_id') or Path(run_dir).name}, "
                     f"{(meta.get('started') or 'start not recorded')[:10]})")
        for r in load_summary(run_dir).itertuples(index=False):
            if r.split == "all" and r.busbw_Bps == r.busbw_Bps and r.busbw_Bps > 0:
                key = (r.backend, r.op, r.dtype, int(r.nbytes), int(r.nranks))
                found.setdefault(key, []).append(float(r.busbw_Bps))
    if not found:
        raise UsageError("--baseline: the baseline runs hold no case with a bandwidth")
    source = "baseline " + "; ".join(names)
    return [Reference(system="baseline", hardware="your baseline run", op=op,
                      busbw_Bps=float(np.median(v)), kind="baseline", source=source, date="",
                      nranks=n, nbytes=s, match={"backend": b, "dtype": d})
            for (b, op, d, s, n), v in sorted(found.items())]
