"""The raw samples of a run, a block at a time (schema 2's samples.bin, bench.core.samples, or
schema 1's samples.csv converted in chunks): `RunSamples` and the views analysis derives from
them (per-sample max and last rank, per-rank medians, rows of chosen ops), every value checked
as it is read. Memory follows a case, not the run. The checks of meta.json and of the CSV
tables are analysis.csv_checks'."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.csv_checks import (MAX_BYTES, MAX_RANKS, SAMPLE_REQUIRED, SAMPLE_SPEC, TIME, Col,
                                 read_table, read_table_chunks, regular_file)
from analysis.meta_checks import is_int, load_checked_meta
from analysis.run_frames import check_ranks, load_summary, with_sample_extras
from bench.core.safe_text import file_error, has_control, message_value, path_text
from bench.core import rundir as fmt
from bench.core.errors import RunDirError
from bench.core.rundir import CASE, WRITTEN_SAMPLE_COLUMNS

if TYPE_CHECKING:
    import pandas as pd


_TIME_COLUMNS = CASE + ["round", "sample", "time_s", "last_rank", "min_s", "ranks", "paired"]


class RunSamples:
    """The raw samples of one run directory, read a block (one case's round, every rank) at a
    time from samples.bin (mapped, not read), so memory follows a case, not the run. Schema
    1's samples.csv is converted into blocks in memory, a chunk at a time. Every value is
    checked as it is read (RunDirError of one line naming the file and the block or line)."""

    def __init__(self, run_dir, meta: dict | None = None):
        self.dir = Path(run_dir)
        self.meta = meta or {}
        self.path = fmt.samples_path(self.dir)
        self._data = None
        self._times = None

    # -- the blocks
    def _source(self):
        """(bytes-like of blocks, offset of the first block, the name errors give)."""
        if self._data is None:
            if self.path.name == fmt.SAMPLES:
                self._data = (_map(self.path), 0, self.path)
            else:
                self._data = _csv_blocks(self.path, self.meta)
        return self._data

    def blocks(self, ops=None):
        """The checked blocks (bench.core.samples.Block) of the run, of `ops` only if given."""
        from bench.core import samples as fmt_blocks

        data, start, name = self._source()
        if data is None:
            return
        i = -1
        try:
            for i, (_, block) in enumerate(fmt_blocks.read_blocks(data, start)):
                if ops is not None and block.case[1] not in ops:
                    continue
                check_block(block, name, i, self.meta)
                yield block
        except fmt_blocks.Damaged as exc:
            raise RunDirError(f"{path_text(name)}: block {i + 2}: {exc}") from None

    @property
    def empty(self) -> bool:
        return next(iter(self.blocks()), None) is None

    def cells(self) -> int:
        """Rank × sample cells of every block, from the blocks' shapes (the times are neither
        read nor checked): what a view of every rank's every sample would hold."""
        from bench.core import samples as fmt_blocks

        data, start, name = self._source()
        if data is None:
            return 0
        try:
            return sum(b.times.size for _, b in fmt_blocks.read_blocks(data, start))
        except fmt_blocks.Damaged as exc:
            raise RunDirError(f"{path_text(name)}: {exc}") from None

    # -- what analysis derives from them
    def frame(self, ops=None) -> pd.DataFrame:
        """Every sample of every rank as rows, of `ops` only if given (only their blocks are
        expanded)."""
        return frame_of_blocks(self.blocks(ops))

    def times(self) -> pd.DataFrame:
        """One row per case, round and sample (_TIME_COLUMNS): time_s, the max over ranks (the
        sample's time); last_rank, the rank whose time that is (first of ties); min_s; ranks,
        how many ranks timed it; paired, whether its ranks name peers (point to point). The
        size of this follows samples, not ranks × samples."""
        import numpy as np
        import pandas as pd

        if self._times is not None:
            return self._times
        parts = []
        for b in self.blocks():
            t = b.times
            present = ~np.isnan(t)
            counts = present.sum(axis=0)
            keep = counts > 0
            if not keep.any():
                continue
            t = t[:, keep]
            filled = np.where(np.isnan(t), -np.inf, t)
            arg = filled.argmax(axis=0)
            part = {c: v for c, v in zip(CASE, b.case)}
            part.update(round=b.round, sample=b.sample[keep],
                        time_s=filled[arg, np.arange(t.shape[1])], last_rank=b.rank[arg],
                        min_s=np.nanmin(t, axis=0), ranks=counts[keep],
                        paired=bool((b.peer >= 0).any()))
            parts.append(pd.DataFrame(part))
        if not parts:
            self._times = pd.DataFrame(columns=_TIME_COLUMNS)
            return self._times
        df = pd.concat(parts, ignore_index=True)
        keys = CASE + ["round", "sample"]
        if df.duplicated(keys).any():  # one case's round in several blocks (pairs: pairings)
            df = df.sort_values("time_s", ascending=False, kind="stable")
            df = df.groupby(keys, as_index=False, sort=False).agg(
                time_s=("time_s", "first"), last_rank=("last_rank", "first"),
                min_s=("min_s", "min"), ranks=("ranks", "sum"), paired=("paired", "max"))
        self._times = df[_TIME_COLUMNS]
        return self._times

    def rank_medians(self, op: str, key) -> pd.DataFrame:
        """Per rank and S of one op and series (backend, nranks, dtype, split): the rank's
        median sample time (its rows pooled over rounds), as rows rank, nbytes, time_s."""
        import numpy as np
        import pandas as pd

        backend, nranks, dtype, split = key
        per: dict = {}
        for b in self.blocks(ops={op}):
            if (b.case[0], b.case[4], b.case[2], b.case[5]) != (backend, nranks, dtype, split):
                continue
            per.setdefault(b.case[3], []).append(b)
        rows = []
        for nbytes, group in per.items():
            if all(np.array_equal(b.rank, group[0].rank) for b in group[1:]):
                # the same rows in every round (as rank 0 writes them): one median per row
                with warnings.catch_warnings():  # a row without samples: NaN, dropped below
                    warnings.simplefilter("ignore", RuntimeWarning)
                    medians = np.nanmedian(np.hstack([b.times for b in group]), axis=1)
                keep = ~np.isnan(medians) & (group[0].rank >= 0)
                if len(set(group[0].rank[keep].tolist())) == int(keep.sum()):
                    rows += list(zip(group[0].rank[keep].tolist(), [nbytes] * int(keep.sum()),
                                     medians[keep].tolist()))
                    continue
            # every cell of the size's blocks, sorted by rank
            rank = np.concatenate([np.repeat(b.rank, b.times.shape[1]) for b in group])
            value = np.concatenate([b.times.ravel() for b in group])
            keep = ~np.isnan(value) & (rank >= 0)
            rank, value = rank[keep], value[keep]
            if not rank.size:
                continue
            order = np.lexsort((value, rank))
            rank, value = rank[order], value[order]
            starts = np.flatnonzero(np.r_[True, rank[1:] != rank[:-1]])
            counts = np.diff(np.r_[starts, rank.size])
            low = starts + (counts - 1) // 2
            high = starts + counts // 2
            medians = (value[low] + value[high]) / 2
            rows += list(zip(rank[starts].tolist(), [nbytes] * starts.size, medians.tolist()))
        return pd.DataFrame(rows, columns=["rank", "nbytes", "time_s"])


class FrameSamples(RunSamples):
    """RunSamples over rows already in memory (a frame of sample rows, as tests and importers
    build them): the same derived views."""

    def __init__(self, df: pd.DataFrame):
        self.df = with_sample_extras(df)
        self._times = None

    def blocks(self, ops=None):
        df = self.df if ops is None else self.df[self.df["op"].isin(list(ops))]
        yield from blocks_of_frame(df)

    def frame(self, ops=None) -> pd.DataFrame:
        return self.df if ops is None else self.df[self.df["op"].isin(list(ops))]


def as_samples(samples) -> RunSamples:
    """samples as RunSamples: a RunSamples as it is, a frame of rows wrapped."""
    return samples if isinstance(samples, RunSamples) else FrameSamples(samples)


def _map(path):
    """The bytes of a regular file, mapped (not read) so that a large run costs what is
    used; b'' for an empty file."""
    import numpy as np

    if not regular_file(path):
        return None
    try:
        if path.stat().st_size == 0:
            return b""
        return np.memmap(path, np.uint8, mode="r")
    except OSError as exc:
        raise file_error(path, exc, "read it") from None


def frame_of_blocks(blocks) -> pd.DataFrame:
    """Rows (WRITTEN_SAMPLE_COLUMNS) of blocks, row by row of each block."""
    import numpy as np
    import pandas as pd

    parts = []
    for b in blocks:
        present = ~np.isnan(b.times)
        i, j = np.nonzero(present)
        if not i.size:
            continue
        part = {c: np.repeat(np.array([v], dtype=object if isinstance(v, str) else np.int64), i.size)
                for c, v in zip(CASE, b.case)}
        part.update(round=np.full(i.size, b.round, np.int64), sample=b.sample[j], rank=b.rank[i],
                    calls=np.where(b.calls[j] >= 0, b.calls[j], np.nan) if (b.calls < 0).any()
                    else b.calls[j], time_s=b.times[i, j], peer=b.peer[i])
        parts.append(pd.DataFrame(part))
    if not parts:
        return pd.DataFrame(columns=WRITTEN_SAMPLE_COLUMNS)
    return pd.concat(parts, ignore_index=True)[WRITTEN_SAMPLE_COLUMNS]


def check_block(block, path, index: int, meta: dict | None = None) -> None:
    """A block's values have SAMPLE_SPEC's kinds and ranges (RunDirError naming the block)."""
    import numpy as np

    case = dict(zip(CASE, block.case))
    where = f"{path_text(path)}: block {index + 1}"

    def fail(name, value, why):
        raise RunDirError(f"{where}: {name} {message_value(value)}: {why}")

    for name in ("backend", "op", "dtype", "split"):
        v = case[name]
        if not isinstance(v, str) or not v:
            fail(name, v, "must be a non-empty name")
        if has_control(v):
            fail(name, v, "holds a control character")
    for name in ("nbytes", "nranks"):
        v, col = case[name], SAMPLE_SPEC[name]
        if not is_int(v) or not col.lo <= v <= col.hi:
            fail(name, v, f"must be {col.rule()}")
    where += f" ({case['op']} S={case['nbytes']} round {block.round})"
    nranks = (meta or {}).get("nranks")
    for name, values, lo in (("rank", block.rank, -1), ("peer", block.peer, -1),
                             ("sample", block.sample, 0), ("calls", block.calls, -1)):
        hi = MAX_BYTES if name in ("sample", "calls") else MAX_RANKS
        bad = (values < lo) | (values > hi)
        if bad.any():
            fail(name, int(values[bad.argmax()]), f"must be {Col('int', lo, hi).rule()}")
        if nranks and name in ("rank", "peer") and (values >= nranks).any():
            raise RunDirError(f"{where}: {name} {int(values[(values >= nranks).argmax()])} of a "
                              f"{nranks}-rank run (meta.json → nranks)")
    t = block.times
    bad = ~np.isnan(t) & ~((t > 0) & np.isfinite(t))
    if bad.any():
        fail("time_s", float(t.ravel()[bad.ravel().argmax()]), f"must be {TIME.rule()}")


def _csv_blocks(path, meta: dict):
    """Schema 1's samples.csv as blocks in memory: (bytes, offset of the first block, the name
    errors give). Nothing is written: analysis reads run directories, it does not change them.
    Memory holds the blocks (8 bytes a sample) and one chunk of text, never the whole table.

    Parsed by pyarrow's multithreaded reader and checked with numpy, a chunk at a time. Any
    line that reader or those checks refuse sends the whole file through read_table's own
    checks instead (slower, and the one that names the file, line and problem), so both ways
    accept and refuse the same files."""
    from bench.core import samples as fmt_blocks

    try:
        parts = [fmt_blocks.encode(b) for b in _fast_csv_blocks(path, meta)]
    except _NotPlain:
        parts = []
        for df in read_table_chunks(path, SAMPLE_SPEC, SAMPLE_REQUIRED):
            df = with_sample_extras(df)
            check_ranks(df, meta, path)
            parts += [fmt_blocks.encode(block) for block in blocks_of_frame(df)]
    return b"".join(parts), 0, path


class _NotPlain(Exception):
    """samples.csv is not plainly valid: read_table's checks will say why (or accept it)."""


def _fast_csv_blocks(path, meta: dict):
    """Blocks of a plainly valid samples.csv (every line whole, every value in range); raises
    _NotPlain at the first thing that is not."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    if not regular_file(path):
        return
    with open(path, "rb") as f:
        header = f.readline()
    size = path.stat().st_size
    if not header.endswith(b"\n") or size <= len(header):
        raise _NotPlain
    try:
        names = header.decode("utf-8").rstrip("\r\n").split(",")
    except UnicodeDecodeError:
        raise _NotPlain from None
    if len(set(names)) != len(names) or any(c not in names for c in SAMPLE_REQUIRED):
        raise _NotPlain
    with open(path, "rb") as f:  # a torn last line (a crash mid-append) is not read
        f.seek(max(0, size - (1 << 20)))
        tail = f.read()
    end = size - (len(tail) - tail.rfind(b"\n") - 1)
    if end <= len(header):
        raise _NotPlain
    name_type = pa.dictionary(pa.int32(), pa.string())
    types = {c: (name_type if SAMPLE_SPEC[c].kind == "str" else pa.float64())
             for c in names if c in SAMPLE_SPEC}
    try:
        source = open(path, "rb")
        reader = pacsv.open_csv(
            pa.PythonFile(_Upto(source, end), mode="r"),
            read_options=pacsv.ReadOptions(block_size=1 << 25),
            parse_options=pacsv.ParseOptions(quote_char=False, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types=types, null_values=[""],
                                                 strings_can_be_null=False,
                                                 include_columns=list(types)))
        nranks = (meta or {}).get("nranks") or MAX_RANKS + 1
        for batch in reader:
            yield from _plain_blocks(batch, nranks, np, pc)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, ValueError):
        raise _NotPlain from None
    finally:
        if "source" in locals():
            source.close()


class _Upto:
    """A file read up to `end` (its bytes are streamed, not mapped: memory stays a chunk)."""

    def __init__(self, f, end: int):
        self.f, self.left, self.closed = f, end, False

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


def _plain_blocks(batch, nranks: int, np, pc):
    """Blocks of one parsed chunk: a block per contiguous run of one case and round."""
    from bench.core import samples as fmt_blocks

    cols = {name: batch.column(name) for name in batch.schema.names}
    if cols["time_s"].null_count:  # rows without a time are dropped, as read_table drops them
        keep = pc.is_valid(cols["time_s"])
        cols = {k: pc.filter(v, keep) for k, v in cols.items()}
    n = len(cols["time_s"])
    if not n:
        return
    codes, labels = {}, {}
    for name in ("backend", "op", "dtype", "split"):
        col = cols[name]
        values = col.dictionary.to_pylist()
        if any(not v or has_control(v) for v in values):
            raise _NotPlain
        codes[name] = col.indices.to_numpy(zero_copy_only=False)
        labels[name] = values
    num = {}
    for name in ("nbytes", "nranks", "round", "sample", "rank", "calls", "time_s", "peer"):
        if name not in cols:
            num[name] = np.full(n, -1.0)  # peer: absent from older files
            continue
        x = cols[name].to_numpy(zero_copy_only=False)
        col = SAMPLE_SPEC[name]
        if name == "calls":
            x = np.where(np.isnan(x), -1.0, x) if cols[name].null_count else x
            ok = (x == -1) | ((x >= col.lo) & (x <= col.hi))
        elif name == "peer" and cols[name].null_count:
            x = np.where(np.isnan(x), -1.0, x)
            ok = (x >= col.lo) & (x <= col.hi)
        elif name == "time_s":
            ok = np.isfinite(x) & (x > 0)
        else:
            ok = (x >= col.lo) & (x <= col.hi)
        if col.kind == "int":
            ok &= x == np.floor(x)
        if not ok.all():
            raise _NotPlain
        num[name] = x
    if (num["rank"] >= nranks).any() or (num["peer"] >= nranks).any():
        raise _NotPlain
    ints = {k: v.astype(np.int64) for k, v in num.items() if k != "time_s"}
    key = [codes["backend"], codes["op"], codes["dtype"], codes["split"], ints["nbytes"],
           ints["nranks"], ints["round"]]
    change = np.zeros(n - 1, bool)
    for column in key:
        change |= column[1:] != column[:-1]
    starts = np.concatenate(([0], np.flatnonzero(change) + 1, [n]))
    for a, b in zip(starts[:-1], starts[1:]):
        k = [int(column[a]) for column in key]
        case = (labels["backend"][k[0]], labels["op"][k[1]], labels["dtype"][k[2]], k[4], k[5],
                labels["split"][k[3]])
        part = [ints[c][a:b] for c in ("rank", "peer", "sample", "calls")]
        try:  # mypy cannot count the items of a starred list (part: four columns), hence the ignore
            yield fmt_blocks.pivot(case, k[6], *part, num["time_s"][a:b])  # type: ignore[call-arg]
        except fmt_blocks.Duplicate:
            raise _NotPlain from None  # the same cell twice: blocks_of_frame keeps both


def blocks_of_frame(df: pd.DataFrame) -> list:
    """Blocks of sample rows (a frame with SAMPLE_COLUMNS and peer): one per case and round,
    and one more for each repeat of a (rank, peer, sample, calls) within it."""
    import numpy as np

    from bench.core import samples as fmt_blocks

    out: list = []
    if df.empty:
        return out
    calls = df["calls"].to_numpy(dtype=float, na_value=np.nan) if "calls" in df \
        else np.full(len(df), np.nan)
    calls = np.where(np.isnan(calls), -1, calls).astype(np.int64)
    df = df.assign(calls=calls)
    for key, g in df.groupby(CASE + ["round"], sort=False):
        cols = [g[c].to_numpy(np.int64) for c in ("rank", "peer", "sample", "calls")]
        time_s = g["time_s"].to_numpy(float)
        repeat = g.groupby(["rank", "peer", "sample", "calls"], sort=False).cumcount().to_numpy() \
            if fmt_blocks.duplicate_cells(*cols) else np.zeros(len(g), np.int64)
        for k in np.unique(repeat):
            sel = repeat == k
            case = tuple(v.item() if hasattr(v, "item") else v for v in key[:-1])
            # mypy cannot count the items of a starred generator (four columns), hence the ignore
            out.append(fmt_blocks.pivot(case, int(key[-1]), *(c[sel] for c in cols),  # type: ignore[call-arg]
                                        time_s[sel]))
    return out


def load_samples(run_dir, meta: dict | None = None, ops=None) -> pd.DataFrame:
    """Raw samples as rows (one per rank and sample, WRITTEN_SAMPLE_COLUMNS), checked; a torn
    last block or line (a crash mid-write) and rows without a time are dropped. With meta,
    ranks and peers must lie below its nranks. ops: only these ops' rows. Every row of every
    rank in memory: for small runs and single ops (analysis verbs use RunSamples)."""
    import pandas as pd

    path = fmt.samples_path(run_dir)
    if path.name == fmt.SAMPLES:
        return RunSamples(run_dir, meta).frame(ops)
    df = read_table(path, SAMPLE_SPEC, SAMPLE_REQUIRED, torn_ok=True,
                    columns=WRITTEN_SAMPLE_COLUMNS)
    if df is None:
        return pd.DataFrame(columns=WRITTEN_SAMPLE_COLUMNS)
    df = with_sample_extras(df)
    check_ranks(df, meta, path)
    return df if ops is None else df[df["op"].isin(list(ops))].reset_index(drop=True)


def load_run(run_dir):
    """(meta, samples, summary) of one run directory, each checked; samples as rows
    (load_samples: small runs; verbs read RunSamples)."""
    meta = load_checked_meta(run_dir)
    return meta, load_samples(run_dir, meta), load_summary(run_dir)
