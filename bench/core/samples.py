"""Raw samples in blocks (schema 2's samples.bin, results/README.md): one block per case and
round as rank 0 records it, a matrix of times (ranks × samples) with its row and column labels,
appended in one write. The file grows by 8 bytes a sample plus a few per rank and per sample,
where schema 1's samples.csv spent one text line (about 76 bytes) on every sample of every
rank; readers map the file and take only the blocks they need. Standard library and numpy
only: rank 0 writes it.

A block on disk (little-endian, every part a multiple of 8 bytes):
    b"CBSBLOCK"                         magic
    uint64 H                            length of the header (a multiple of 8)
    H bytes                             JSON, padded with spaces: {"case": [backend, op, dtype,
                                        nbytes, nranks, split], "round": r, "rows": R, "cols": S}
    int64[R] rank, int64[R] peer        the row labels (world rank; its peer, or -1)
    int64[S] sample, int64[S] calls     the column labels (sample number; calls timed, -1 unknown)
    float64[R*S] time_s                 row-major; NaN where a row has no such sample
A last block cut short (a crash mid-write) is not damage: readers drop it."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

MAGIC = b"CBSBLOCK"
_HEAD = 16  # magic + header length
CASE = ["backend", "op", "dtype", "nbytes", "nranks", "split"]  # what a block's case holds


@dataclass
class Block:
    """The samples of one case and round: times[i, j] is row i's (rank[i], peer[i]) time of
    sample[j], timed over calls[j] calls; NaN where there is none."""
    case: tuple            # (backend, op, dtype, nbytes, nranks, split): bench.core.rundir.CASE
    round: int
    rank: np.ndarray       # int64 [R]
    peer: np.ndarray       # int64 [R]
    sample: np.ndarray     # int64 [S]
    calls: np.ndarray      # int64 [S]
    times: np.ndarray      # float64 [R, S]

    @property
    def count(self) -> int:
        """Samples in the block (present cells)."""
        return int(np.count_nonzero(~np.isnan(self.times)))


def encode(block: Block) -> bytes:
    """The bytes of one block, ready to append."""
    rows, cols = block.times.shape
    header = json.dumps({"case": [_plain(v) for v in block.case], "round": int(block.round),
                         "rows": rows, "cols": cols}, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    parts = [MAGIC, np.uint64(len(header)).tobytes(), header]
    for values, dtype in ((block.rank, "<i8"), (block.peer, "<i8"), (block.sample, "<i8"),
                          (block.calls, "<i8"), (block.times, "<f8")):
        parts.append(np.ascontiguousarray(values, dtype=dtype).tobytes())
    return b"".join(parts)


def _plain(value):
    return int(value) if isinstance(value, (np.integer,)) else value


def block_of(case, round_no, ranks, peers, times, calls) -> Block:
    """A block from rank 0's gathered samples: `times` a list per row (rows may differ in
    length: the shorter ones are padded with NaN), one `calls` for every sample."""
    cols = max((len(t) for t in times), default=0)
    matrix = np.full((len(times), cols), np.nan)
    for i, t in enumerate(times):
        matrix[i, :len(t)] = t
    return Block(tuple(case), int(round_no), np.asarray(ranks, np.int64),
                 np.asarray(peers, np.int64), np.arange(cols, dtype=np.int64),
                 np.full(cols, -1 if calls is None else int(calls), np.int64), matrix)


class Damaged(ValueError):
    """A block that is not what the format says (the reader names the file)."""


def read_blocks(data, start: int = 0):
    """Yield (offset, Block) of every whole block in `data` (bytes, or a numpy memmap of the
    file: the arrays are views of it, not copies); a last block cut short ends the iteration.
    Damaged (with the offset) for anything else that does not follow the format. The values
    themselves are checked by the readers (analysis.csv_checks)."""
    buf = memoryview(data) if not isinstance(data, np.ndarray) else data
    end, pos = len(data), start
    while pos < end:
        if end - pos < _HEAD:
            return  # torn
        if bytes(buf[pos:pos + 8]) != MAGIC:
            raise Damaged(f"byte {pos}: not the start of a block (damaged)")
        hlen = int(np.frombuffer(bytes(buf[pos + 8:pos + 16]), "<u8")[0])
        if hlen % 8 or hlen > 1 << 20:
            raise Damaged(f"byte {pos}: a block header of {hlen} bytes (damaged)")
        if end - pos - _HEAD < hlen:
            return
        try:
            head = json.loads(bytes(buf[pos + _HEAD:pos + _HEAD + hlen]).decode("utf-8"))
            case, round_no, rows, cols = head["case"], head["round"], head["rows"], head["cols"]
        except (ValueError, KeyError, TypeError) as exc:
            raise Damaged(f"byte {pos}: unreadable block header ({exc})") from None
        if not (isinstance(case, list) and len(case) == 6 and _counts(round_no, rows, cols)):
            raise Damaged(f"byte {pos}: a block header without a case, round, rows and cols")
        size = 8 * (2 * rows + 2 * cols + rows * cols)
        body = pos + _HEAD + hlen
        if end - body < size:
            return
        arrays, off = [], body
        for count, dtype in ((rows, "<i8"), (rows, "<i8"), (cols, "<i8"), (cols, "<i8"),
                             (rows * cols, "<f8")):
            arrays.append(np.frombuffer(data, dtype, count, off) if count else np.empty(0, dtype))
            off += 8 * count
        rank, peer, sample, calls, times = arrays
        yield pos, Block(tuple(case), round_no, rank, peer, sample, calls, times.reshape(rows, cols))
        pos = off


def _counts(*values) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 40 for v in values)


def blocks_of_rows(rows) -> list:
    """Blocks from sample rows (dicts with CASE, round, sample, rank, calls, time_s and
    optionally peer, as schema 1 holds them): one block per case and round, a row per
    (rank, peer), a column per (sample, calls). Rows without a time are dropped."""
    groups: dict = {}
    for row in rows:
        t = row.get("time_s")
        if t is None or t == "" or (isinstance(t, float) and math.isnan(t)):
            continue
        key = (tuple(row[c] for c in CASE), int(row["round"]))
        calls = row.get("calls")
        calls = -1 if calls is None or calls == "" or (isinstance(calls, float) and math.isnan(calls)) \
            else int(calls)
        groups.setdefault(key, []).append((int(row["rank"]), int(row.get("peer", -1)),
                                           int(row["sample"]), calls, float(t)))
    blocks = []
    for (case, round_no), cells in groups.items():
        a = np.array([c[:4] for c in cells], np.int64).reshape(-1, 4)
        t = np.array([c[4] for c in cells], float)
        blocks.append(pivot(case, round_no, a[:, 0], a[:, 1], a[:, 2], a[:, 3], t))
    return blocks


def _codes(key: np.ndarray):
    """(distinct values sorted, index of each element among them): by direct addressing
    when the values span little more than their count (ranks, sample numbers), else by
    np.unique."""
    lo, hi = int(key.min()), int(key.max())
    span = hi - lo + 1
    if span <= 4 * key.size + 1024:
        present = np.zeros(span, bool)
        present[key - lo] = True
        position = np.cumsum(present) - 1
        return np.flatnonzero(present) + lo, position[key - lo]
    values, inverse = np.unique(key, return_inverse=True)
    return values, inverse.ravel()


class Duplicate(ValueError):
    """A (rank, peer, sample, calls) cell given twice: such rows cannot share one block."""


def pivot(case, round_no, rank, peer, sample, calls, time_s) -> Block:
    """A block from one case and round's cells given as columns (rank, peer, sample, calls,
    time_s), rows ordered by (rank, peer), columns by (sample, calls). Duplicate when a cell
    is given twice (callers split such input into separate blocks)."""
    row_key = rank * (1 << 26) + (peer + 1)  # both below 2**25 (readers check the ranges)
    keys, row_of = _codes(row_key)
    if (calls == calls[0]).all():
        col_samples, col_of = _codes(sample)
        col_calls = np.full(col_samples.size, calls[0], np.int64)
    else:
        cols, col_of = np.unique(np.stack([sample, calls], axis=1), axis=0, return_inverse=True)
        col_samples, col_calls, col_of = cols[:, 0].copy(), cols[:, 1].copy(), col_of.ravel()
    flat = row_of * col_samples.size + col_of
    matrix = np.full(keys.size * col_samples.size, np.nan)
    matrix[flat] = time_s
    if np.count_nonzero(~np.isnan(matrix)) != flat.size:
        raise Duplicate(f"{case}, round {round_no}: a cell given twice")
    return Block(tuple(case), int(round_no), (keys >> 26).astype(np.int64),
                 (keys & ((1 << 26) - 1)).astype(np.int64) - 1, col_samples.astype(np.int64),
                 col_calls, matrix.reshape(keys.size, col_samples.size))


def duplicate_cells(rank, peer, sample, calls) -> bool:
    """Whether some (rank, peer, sample, calls) occurs twice (such rows cannot share a block)."""
    try:
        pivot(("", "", "", 0, 0, ""), 0, rank, peer, sample, calls, np.ones(rank.size))
    except Duplicate:
        return True
    return False
