"""The writers of a run directory (results/README.md): RunWriter, which `commbench run`'s rank
0 and the local launcher write a run with as it goes, and write_run_dir, which writes a whole
one at once (imports, synthetic runs). Every file through bench.core.atomic_write. Standard
library and numpy only."""
from __future__ import annotations

import json
from pathlib import Path

from bench.core import samples as blocks
from bench.core.atomic_write import append_bytes, atomic_write_bytes, atomic_write_text
from bench.core.rundir import (CURRENT, META, SAMPLE_EXTRA, SAMPLES, SAMPLES_CSV, SCHEMA, SCHEMA_CSV, SUMMARY,
                               WRITTEN_SAMPLE_COLUMNS, WRITTEN_SUMMARY_COLUMNS, csv_text, now_utc)


class RunWriter:
    """Writes one run directory: meta.json and summary.csv replaced atomically, samples.bin
    appended a block (a case's round) at a time, so a crash loses at most the case in
    progress."""

    def __init__(self, out_dir, meta: dict):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.meta = meta
        self.samples_path = self.dir / SAMPLES
        if not self.samples_path.exists():
            self.samples_path.touch()
        self.write_meta()

    def write_meta(self, **updates) -> None:
        self.meta.update(updates)
        atomic_write_text(self.dir / META, json.dumps(self.meta, indent=2, default=str) + "\n")

    def append_block(self, block: blocks.Block) -> None:
        """The samples of one case and round (bench.core.samples.block_of)."""
        append_bytes(self.samples_path, blocks.encode(block))

    def write_summary(self, rows: list[dict], op_order=()) -> None:
        """Rows in one order whoever writes them: backend, op (in op_order, the registry's),
        split, S."""
        order = {name: i for i, name in enumerate(op_order)}
        rows = sorted(rows, key=lambda r: (r["backend"], order.get(r["op"], len(order)),
                                           r["split"], r["nbytes"]))
        atomic_write_text(self.dir / SUMMARY, csv_text(WRITTEN_SUMMARY_COLUMNS, rows))

    def note_case(self, label: str) -> None:
        """Which case rank 0 is measuring now (read back when a rank dies from outside)."""
        atomic_write_text(self.dir / CURRENT, label + "\n")

    def finish(self, status: str, **extra) -> None:
        self.write_meta(status=status, finished=now_utc(), **extra)
        (self.dir / CURRENT).unlink(missing_ok=True)


def write_run_dir(run_dir, meta: dict, samples: list[dict], summary: list[dict]) -> Path:
    """A complete run directory at once (imports, synthetic runs): every file atomically, the
    samples in the form of meta's schema (schema 2 unless meta says 1)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = {"schema": SCHEMA, **meta}
    atomic_write_text(run_dir / META, json.dumps(meta, indent=2, default=str) + "\n")
    samples = [{**SAMPLE_EXTRA, **row} for row in samples]
    if meta["schema"] == SCHEMA_CSV:
        atomic_write_text(run_dir / SAMPLES_CSV, csv_text(WRITTEN_SAMPLE_COLUMNS, samples))
    else:
        atomic_write_bytes(run_dir / SAMPLES, b"".join(
            blocks.encode(b) for b in blocks.blocks_of_rows(samples)))
    atomic_write_text(run_dir / SUMMARY, csv_text(WRITTEN_SUMMARY_COLUMNS, summary))
    return run_dir
