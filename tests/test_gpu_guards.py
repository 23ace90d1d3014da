"""GPU requests that are known bad before any rank starts are refused by name, on any machine
(the checks read the options and the visible GPU count; no GPU needed)."""
from __future__ import annotations

import pytest

from bench.backends.torch_dist import GlooBackend, NCCLBackend
from bench.core.errors import UsageError
from bench.ops import OPS
from bench.settings import Settings


def options(**kw):
    return Settings(**kw)


def test_gloo_refuses_point_to_point_on_cuda_tensors_by_name():
    cuda = options(device="cuda")
    for name in ("pingpong", "bw", "bibw", "multipair", "pairs"):
        assert "gloo sends no CUDA tensors point to point" in GlooBackend.op_problem(OPS[name], cuda)
    for name in ("allreduce", "allgather", "reduce_scatter", "broadcast", "alltoall", "barrier"):
        assert GlooBackend.op_problem(OPS[name], cuda) is None
    assert GlooBackend.op_problem(OPS["pingpong"], options(device="cpu")) is None


@pytest.mark.slow  # imports torch
def test_nccl_needs_a_gpu_per_rank(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    NCCLBackend.check_ranks(options(), 1)
    with pytest.raises(UsageError, match="2 ranks on this host but 1 GPU"):
        NCCLBackend.check_ranks(options(), 2)
    GlooBackend.check_ranks(options(device="cuda"), 4)  # gloo ranks may share a GPU
