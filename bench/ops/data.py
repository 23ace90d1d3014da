"""The data an op's buffers hold, as periodic arrays: small integers, so that reductions in
any dtype compare exactly, written and checked a tile at a time so that nothing of a buffer's
size is built on the host or the device. Ops say what their buffers hold before and after a
call (bench.ops.op); backends fill and check their buffers with `fill`, `tiles` and
`count_wrong`."""
from __future__ import annotations

import numpy as np

CHUNK = 1 << 20  # elements per tile when buffers are filled and checked piece by piece


class Periodic:
    """A long 1-D array of small integers that repeats: segments one after the other, each
    `length` elements of its `pattern` (a short int64 array) over and over, from pattern[0].
    What values(), initial() and expected() return, so that a buffer is filled and checked
    a tile at a time (`tiles`) and nothing of the buffer's size is built, on the host or the
    device. It stands in for the full array where one is wanted: np.asarray() builds it,
    len() is its length, == and != compare element by element, + adds element by element."""
    __hash__ = None  # type: ignore[assignment]  # unhashable (== is element-wise): mypy wants a method

    def __init__(self, *segments):
        self.segments = tuple((int(length), np.asarray(pattern, dtype=np.int64))
                              for length, pattern in segments if length > 0)

    def __len__(self):
        return sum(length for length, _ in self.segments)

    def __repr__(self):
        return f"Periodic({', '.join(f'({n}, {p.tolist()})' for n, p in self.segments)})"

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("a Periodic array is built on demand: it cannot be viewed without a copy")
        out = np.empty(len(self), dtype=np.int64 if dtype is None else dtype)
        for start, stop, tile in self.runs(lambda tile: tile.astype(out.dtype)):
            out[start:stop] = tile[:stop - start]
        return out

    def __eq__(self, other):
        return np.asarray(self) == np.asarray(other)

    def __ne__(self, other):
        return np.asarray(self) != np.asarray(other)

    def __add__(self, other):
        if isinstance(other, (int, np.integer)) and other == 0:
            return self  # sum() starts from 0
        if not isinstance(other, Periodic) or \
                [n for n, _ in self.segments] != [n for n, _ in other.segments]:
            return np.asarray(self) + np.asarray(other)
        def added(a, b):
            period = int(np.lcm(len(a), len(b)))
            return _tile(a, period) + _tile(b, period)
        return Periodic(*((n, added(a, b)) for (n, a), (_, b) in zip(self.segments, other.segments)))

    __radd__ = __add__

    def runs(self, convert=lambda tile: tile, chunk: int = CHUNK):
        """(start, stop, convert(tile)) in order, covering the array: the data of
        [start, stop) are tile[:stop - start], a tile being the segment's pattern repeated to
        at most about `chunk` elements. convert is called once per distinct tile."""
        converted, start = {}, 0
        for length, pattern in self.segments:
            period = len(pattern)
            span = period * -(-min(chunk, length) // period)  # whole periods: every tile starts at phase 0
            key = (span, pattern.tobytes())
            if key not in converted:
                converted[key] = convert(_tile(pattern, span))
            tile = converted[key]
            for at in range(0, length, span):
                yield start + at, start + at + min(span, length - at), tile
            start += length

    @staticmethod
    def concat(parts) -> Periodic:
        return Periodic(*(segment for part in parts for segment in part.segments))


def _tile(pattern: np.ndarray, size: int) -> np.ndarray:
    return np.tile(pattern, -(-size // len(pattern)))[:size]


def constant(count: int, value: int) -> Periodic:
    """`count` elements of `value` (a receive buffer's contents before the call)."""
    return Periodic((count, [value]))


def values(rank: int, count: int, offset: int = 0) -> Periodic:
    """The data rank `rank` contributes: small integers, exact in every dtype and in sums
    (element i is (offset + i + rank) mod 4)."""
    return Periodic((count, (np.arange(4) + offset + rank) % 4))


def tiles(data, convert=lambda tile: tile, chunk: int = CHUNK):
    """(start, stop, tile) covering `data` (a Periodic or any 1-D array) in order: the data of
    [start, stop) are tile[:stop - start]. convert (an int64 array -> what the caller copies
    or compares with: an array of the buffer's dtype, a tensor on its device) is called once
    per distinct tile of a Periodic, once per chunk of an array."""
    if isinstance(data, Periodic):
        yield from data.runs(convert, chunk)
        return
    data = np.asarray(data)
    for start in range(0, len(data), chunk):
        yield start, min(start + chunk, len(data)), convert(data[start:start + chunk])


def fill(buf: np.ndarray, data) -> None:
    """Write `data` (a Periodic, or any 1-D array) into the host array buf, a tile at a time
    in buf's dtype: no temporary of the buffer's size."""
    for start, stop, tile in tiles(data, lambda tile: tile.astype(buf.dtype)):
        buf[start:stop] = tile[:stop - start]


def count_wrong(got: np.ndarray, expected) -> int:
    """Elements of `got` (a host array) that differ from `expected` (Periodic, or any 1-D
    array), compared tile by tile in got's own dtype, which is exact where the dtype holds
    every expected value; where it cannot (a sum that wraps in int8), in float64, as the
    numbers they are (such an element can never match)."""
    if len(got) != len(expected):
        raise ValueError(f"received {len(got)} elements, expected {len(expected)}")

    def convert(tile):
        same = tile.astype(got.dtype)
        return same if np.array_equal(same, tile) else tile.astype(np.float64)
    return int(sum(np.count_nonzero(got[start:stop] != tile[:stop - start])
                   for start, stop, tile in tiles(expected, convert)))
