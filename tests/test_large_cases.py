"""The untimed per-case work (filling buffers with the initial data, checking every element of
every receive buffer) costs about as much as the data moved, not seconds per GiB: the data
are Periodic (tiles of a short pattern), written and compared a tile at a time in the
buffer's own dtype, and on a torch backend where the buffer lives. Still every element is
checked exactly, with the very numbers the ops always gave."""
from __future__ import annotations

import numpy as np
import pytest

from bench.ops import OPS
from bench.ops.data import CHUNK, Periodic, constant, count_wrong, tiles, values
from bench.rank_loop import wrong_elements
from tests.conftest import needs_mpi4py, needs_torch
from tests.fakes import FakeBackend


# ---- the data are the numbers they always were -------------------------------------------
def old_values(rank, count, offset=0):
    return (np.arange(offset, offset + count, dtype=np.int64) + rank) % 4


def old_block(src, dst, count):
    return (np.arange(count, dtype=np.int64) + 7 * src + 3 * dst) % 8


def old_initial(op, case, rank):
    """initial() as it was before the data became Periodic (a full int64 array)."""
    n = case.nranks
    if op.name == "alltoall":
        block = case.send_count // n
        return np.concatenate([old_block(rank, d, block) for d in range(n)]), np.full(case.recv_count, 9)
    if op.name == "broadcast":
        return None, old_values(0, case.recv_count) if rank == 0 else np.full(case.recv_count, 7)
    if op.name == "allreduce_inplace":
        return None, old_values(rank, case.recv_count)
    if op.name == "barrier":
        return None, None
    return old_values(rank, case.send_count), np.full(case.recv_count, 7)


def old_expected(op, case, rank):
    n, name = case.nranks, op.name
    if name in ("allreduce", "allreduce_inplace"):
        return sum(old_values(r, case.recv_count) for r in range(n))
    if name == "allgather":
        return np.concatenate([old_values(r, case.send_count) for r in range(n)])
    if name == "reduce_scatter":
        return sum(old_values(r, case.recv_count, rank * case.recv_count) for r in range(n))
    if name == "alltoall":
        block = case.recv_count // n
        return np.concatenate([old_block(s, rank, block) for s in range(n)])
    if name == "broadcast":
        return old_values(0, case.recv_count)
    return "unchanged"  # point to point: checked against values() directly below


@pytest.mark.parametrize("n, nbytes", [(n, s) for n in (1, 2, 3, 5, 8) for s in (4, 12, 40, 1000, 4 * 1001)]
                         + [(2, 4 * (2 * CHUNK + 7)), (3, 4 * (2 * CHUNK + 7))])  # several tiles
@pytest.mark.slow
def test_initial_and_expected_are_the_numbers_they_always_were(n, nbytes):
    for op in OPS.values():
        if op.rank_problem(n) is not None:
            continue
        for case in op.cases(nbytes, n, 4):
            for rank in range(n):
                new_send, new_recv = op.initial(case, rank)
                old_send, old_recv = old_initial(op, case, rank)
                for new, old in ((new_send, old_send), (new_recv, old_recv)):
                    if old is None:
                        assert new is None
                    else:
                        assert len(new) == len(old) and np.array_equal(np.asarray(new), old), (op.name, rank)
                new, old = op.expected(case, rank), old_expected(op, case, rank)
                if isinstance(old, str):
                    new = np.asarray(new) if new is not None else None
                    assert new is None or (new.min() >= 0 and new.max() <= 3)
                    continue
                assert len(new) == len(old) and np.array_equal(np.asarray(new), old), (op.name, n, rank)


def test_periodic_stands_in_for_the_array():
    a, b = values(1, 10), values(2, 10)
    assert len(a) == 10 and np.array_equal(np.asarray(a), old_values(1, 10))
    assert np.array_equal(np.asarray(a + b), old_values(1, 10) + old_values(2, 10))
    assert np.array_equal(np.asarray(sum([a, b])), old_values(1, 10) + old_values(2, 10))
    assert (a == old_values(1, 10)).all() and not (a != old_values(1, 10)).any()
    assert (old_values(1, 10) == a).all()
    assert np.array_equal(np.asarray(a, dtype=np.float32), old_values(1, 10).astype(np.float32))
    both = Periodic.concat([a, constant(3, 7)])
    assert np.array_equal(np.asarray(both), np.r_[old_values(1, 10), [7, 7, 7]])
    # tiles cover the array in order, each starting at the pattern's first element
    covered = np.concatenate([tile[:stop - start] for start, stop, tile in tiles(both, chunk=4)])
    assert np.array_equal(covered, np.asarray(both))
    plain = np.arange(11)
    assert np.array_equal(np.concatenate([t[:e - s] for s, e, t in tiles(plain, chunk=4)]), plain)


def test_expected_data_are_small_whatever_the_size():
    """1 GiB of float32 on 8 ranks: the expected result and the initial data are a handful
    of short patterns (were 2 GiB int64 arrays per rank, 8 summed); their size, not a time,
    is checked, so a loaded machine cannot fail it."""
    for name in ("allreduce", "allgather", "reduce_scatter", "alltoall", "broadcast"):
        case = OPS[name].case(1 << 30, 8, 4)
        for rank in range(8):
            for data in (*OPS[name].initial(case, rank), OPS[name].expected(case, rank)):
                if data is not None:
                    assert isinstance(data, Periodic)
                    assert sum(p.nbytes for _, p in data.segments) < 1024


# ---- counting wrong elements ----------------------------------------------------------------
def old_count(got, expected):
    got, expected = np.asarray(got).astype(np.float64), np.asarray(expected).astype(np.float64)
    return int(np.count_nonzero(got != expected))


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "int64", "float16", "float32", "float64"])
@pytest.mark.slow
def test_count_wrong_is_exact_in_every_dtype(dtype):
    rng = np.random.default_rng(1)
    op = OPS["reduce_scatter"]
    case = op.case(4 * (3 * CHUNK + 5), 3, 4)
    expected = op.expected(case, 2)
    got = np.asarray(expected).astype(dtype)
    assert count_wrong(got, expected) == 0
    where = rng.choice(len(got), 25, replace=False)
    got[where] += 1
    got[0] = 5 if got[0] != 5 else 6  # the first and last element count too
    got[-1] = 9
    assert count_wrong(got, expected) == old_count(got, expected) == len(set(where) | {0, len(got) - 1})
    assert count_wrong(got, np.asarray(expected)) == old_count(got, expected)  # a plain array too


def test_values_a_dtype_cannot_hold_never_match():
    """int8 sums of 128 ranks (192) wrap: as before, such elements count as wrong (the numbers are
    compared, not their wrapped images)."""
    op = OPS["allreduce"]
    case = op.case(4 * 1000, 128, 1)
    expected = op.expected(case, 0)
    got = np.asarray(expected).astype(np.int8)  # wraps like an int8 MPI sum
    assert count_wrong(got, expected) == old_count(got, expected) > 0
    assert count_wrong(np.asarray(expected).astype(np.int16), expected) == 0


def test_negative_zero_is_zero():
    expected = constant(10, 0)
    got = np.zeros(10, np.float32)
    got[3] = -0.0
    assert count_wrong(got, expected) == 0


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        count_wrong(np.zeros(5, np.float32), constant(6, 0))


def test_corrupt_injection_counts_one_wrong_element(monkeypatch):
    be = FakeBackend()
    op = OPS["allgather"]
    case = op.case(4 * 1000, 1, 4)
    recv = np.asarray(op.expected(case, 0)).astype(np.float32)
    assert wrong_elements(be, case, recv) == 0
    monkeypatch.setenv("COMMBENCH_INJECT", f"corrupt:allgather:{case.nbytes}:0")
    recv = np.asarray(op.expected(case, 0)).astype(np.float32)
    assert wrong_elements(be, case, recv) == 1


# ---- the backends -----------------------------------------------------------------------
@needs_mpi4py
@pytest.mark.parametrize("dtype", ["int8", "int32", "float32", "float64"])
def test_mpi_write_fills_the_buffer_with_the_data(dtype):
    from bench.backends.mpi import MPIBackend

    be = MPIBackend.__new__(MPIBackend)  # write, read and the check need no communicator
    be.rank = 0
    buf = np.full(2 * CHUNK + 13, 99, dtype=dtype)
    data = Periodic.concat([values(1, CHUNK + 3), values(2, CHUNK + 10)])
    be.write(buf, data)
    assert np.array_equal(be.read(buf), np.asarray(data).astype(dtype))
    be.write(buf, np.arange(len(buf)))  # a plain array still works
    assert np.array_equal(buf, np.arange(len(buf)).astype(dtype))


def _torch_backend(on_device):
    """A torch backend without a process group (write, count_wrong need none); on_device:
    take the GPU path (torch ops on the tensor) on CPU tensors, as on a GPU."""
    import torch

    from bench.backends.torch_dist import GlooBackend

    class OnDevice(GlooBackend):
        device_chunk = 1000  # many tiles, and tiles that end inside a segment

        def _numpy(self, t):
            return None

    cls = OnDevice if on_device else GlooBackend
    be = cls.__new__(cls)
    be.torch, be.rank, be.device = torch, 0, torch.device("cpu")
    return be


TORCH_DTYPES = ["int8", "uint8", "int32", "int64", "float16", "bfloat16", "float32", "float64"]


@needs_torch
@pytest.mark.parametrize("on_device", [False, True])
@pytest.mark.parametrize("dtype", TORCH_DTYPES)
@pytest.mark.slow
def test_torch_write_and_count_are_exact(dtype, on_device):
    import torch

    be = _torch_backend(on_device)
    tdtype = getattr(torch, dtype)
    op = OPS["alltoall"]
    case = op.case(4 * (2 * CHUNK + 40), 4, 4)
    send, _ = op.initial(case, 1)
    buf = torch.full((len(send),), 99, dtype=tdtype)
    be.write(buf, send)
    assert torch.equal(buf.double(), torch.from_numpy(np.asarray(send)).double())
    assert be.count_wrong(buf, send) == 0
    rng = np.random.default_rng(2)
    where = rng.choice(len(buf), 17, replace=False)
    buf[torch.from_numpy(where)] += 1
    buf[-1] = 5
    assert be.count_wrong(buf, send) == len(set(where) | {len(buf) - 1})
    assert be.count_wrong(buf, np.asarray(send)) == len(set(where) | {len(buf) - 1})
    be.write(buf, np.asarray(send))  # a plain array still works
    assert be.count_wrong(buf, send) == 0


@needs_torch
@pytest.mark.parametrize("on_device", [False, True])
def test_torch_bfloat16_edge_values(on_device):
    import torch

    be = _torch_backend(on_device)
    buf = torch.zeros(3000, dtype=torch.bfloat16)
    buf[7] = -0.0  # equal to 0 by value, though not by its bits
    assert be.count_wrong(buf, constant(3000, 0)) == 0
    buf[7] = float("nan")
    assert be.count_wrong(buf, constant(3000, 0)) == 1
    # 257 has no bfloat16: every element counts as wrong, as when compared in float64
    buf = torch.full((3000,), 257, dtype=torch.bfloat16)
    assert be.count_wrong(buf, constant(3000, 257)) == 3000
    assert be.count_wrong(buf, constant(3000, 256)) == 0


@needs_torch
def test_torch_corrupt_injection_on_the_buffer(monkeypatch):
    import torch

    be = _torch_backend(on_device=True)
    op = OPS["allreduce"]
    case = op.case(4 * 5000, 2, 4)
    recv = torch.from_numpy(np.asarray(op.expected(case, 0)).astype(np.float32))
    assert wrong_elements(be, case, recv) == 0
    monkeypatch.setenv("COMMBENCH_INJECT", f"corrupt:allreduce:{case.nbytes}:0")
    assert wrong_elements(be, case, recv) == 1
