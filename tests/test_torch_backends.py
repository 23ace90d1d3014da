"""torch.distributed backends: gloo on CPU under mpiexec and torchrun, on sub-groups and beside
mpi; the env and rendezvous builders; the op-support mechanism; CUDA/NCCL paths skip without a
GPU. Tests that are the same for mpi and gloo (every op recorded, external mpiexec, failing and
hung ranks) are parametrised over both in tests/test_run_mpi.py; what each op computes is
checked on real ranks by tests/test_ops_spmd.py. Only the tests marked needs_torch need torch."""
import argparse
import subprocess
import sys
import textwrap

import pytest

from analysis.runsamples import load_run
from bench.backends.torch_dist import GlooBackend
from bench.core.errors import UsageError
from bench.spawn import run_ranks, torch_local_envs
from bench.settings import Settings
from bench.world import World, rendezvous
from bench.ops import OPS, get_op
from tests.conftest import QUICK, ROOT, commbench_env, needs_mpi, needs_torch, run_commbench
from tests.runs import check_complete



def installed_torch():
    """torch or None, imported only when a test that needs it runs (an import of seconds): the
    marks below are strings, which pytest evaluates then."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def have_cuda() -> bool:
    torch = installed_torch()
    return torch is not None and torch.cuda.is_available()


def have_nccl() -> bool:
    return have_cuda() and installed_torch().distributed.is_nccl_available()


cuda = pytest.mark.skipif("not have_cuda()", reason="no CUDA device")
nccl = pytest.mark.skipif("not have_nccl()", reason="no CUDA device or no NCCL in this torch")


# --- gloo on CPU, end to end ---------------------------------------------------------------
@needs_torch
def test_gloo_on_sub_groups(tmp_path):
    """--split on one host: intra is the world again, inter one group of 1 per rank, so rank 1
    is rank 0 of its group (roots and peers are translated to world ranks for torch)."""
    out = tmp_path / "run"
    r = run_commbench("run", "--backend", "gloo", "-n", 2, "--split", "intra,inter", "--ops",
                      "allreduce,broadcast,alltoall", "--sizes", "64", "--out", out, *QUICK, timeout=200)
    assert r.returncode == 0, r.stderr
    _, _, summary = check_complete(out, 2, ["allreduce", "broadcast", "alltoall"], ("gloo",))
    assert sorted(zip(summary.split, summary.nranks))[::3] == [("inter", 1), ("intra", 2)]


@needs_mpi
@needs_torch
def test_mpi_and_gloo_side_by_side_in_one_run(tmp_path):
    out = tmp_path / "run"
    ops = ["allreduce", "allreduce_inplace", "pingpong"]
    r = run_commbench("run", "--backend", "mpi,gloo", "-n", 2, "--ops", ",".join(ops),
                      "--sizes", "64,64K", "--out", out, *QUICK, timeout=200)
    assert r.returncode == 0, r.stderr
    meta, samples, summary = check_complete(out, 2, ops, ("mpi", "gloo"))
    assert len(summary) == 12 and set(samples.backend) == {"mpi", "gloo"}
    assert set(meta["backends"]) == {"mpi", "gloo"}
    assert meta["backends"]["gloo"]["init_method"] == "tcp://"  # agreed through MPI


@needs_torch
def test_gloo_under_torchrun(tmp_path):
    out = tmp_path / "run"
    # --standalone: a local rendezvous on a free port (a fixed port could be taken)
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "bench.cli", "run", "--backend", "gloo", "--ops", "allreduce", "--sizes",
            "64", "--out", str(out), *QUICK]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=200, env=commbench_env())
    assert r.returncode == 0, r.stderr
    check_complete(out, 2, ["allreduce"], ("gloo",))


@needs_torch
def test_importing_commbench_does_not_import_torch():
    code = textwrap.dedent("""
        import sys
        import bench.cli, bench.run, bench.rank_loop, bench.spawn, bench.world, bench.backends.torch_dist
        bench.cli.build_parser()
        from bench.backends import backend_class
        assert backend_class("gloo").problem() is None
        assert "torch" not in sys.modules, "torch imported"
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=commbench_env(), cwd=ROOT)
    assert r.returncode == 0, r.stderr


# --- the torch launcher: a rank that ends stops the job (no torch needed) -------------------
@pytest.mark.ranks
@pytest.mark.timeout(60)
def test_run_ranks_stops_the_others_when_one_dies():
    code = ("import os, sys, time; r = int(os.environ['RANK']); time.sleep(0.2) if r else time.sleep(60); "
            "sys.exit(7)")
    envs = torch_local_envs(2, 12345, env={"PATH": "/usr/bin:/bin"})
    import time

    t0 = time.monotonic()
    rc, message = run_ranks([sys.executable, "-c", code], envs, grace_s=0.5)
    assert time.monotonic() - t0 < 30
    assert rc == 7 and message == "rank 1 exited with status 7; the other ranks were stopped"


@pytest.mark.ranks
@pytest.mark.timeout(60)
def test_run_ranks_reports_the_first_failure_a_rank_printed():
    code = ("import os, sys, time; r = int(os.environ['RANK']); time.sleep(60 if r == 0 else 0.2); "
            "print(f'commbench: rank {r} failed in allreduce at 64 B on gloo: boom', file=sys.stderr); "
            "sys.exit(3)")
    rc, message = run_ranks([sys.executable, "-c", code], torch_local_envs(2, 1, env={}), grace_s=0.5)
    assert (rc, message) == (3, "commbench: rank 1 failed in allreduce at 64 B on gloo: boom")


@pytest.mark.ranks
@pytest.mark.timeout(60)
def test_run_ranks_waits_for_orderly_exits():
    code = "import os, sys, time; r = int(os.environ['RANK']); time.sleep(0.5 * (1 - r)); sys.exit(1)"
    rc, message = run_ranks([sys.executable, "-c", code], torch_local_envs(2, 1, env={}), grace_s=0.1)
    assert (rc, message) == (1, "")


# --- builders, tested without running anything -------------------------------------------------
def test_torch_local_envs():
    envs = torch_local_envs(3, 29500, env={"PATH": "/bin", "OMPI_COMM_WORLD_RANK": "5"})
    assert [e["RANK"] for e in envs] == ["0", "1", "2"] == [e["LOCAL_RANK"] for e in envs]
    for e in envs:
        assert e["WORLD_SIZE"] == "3" and e["LOCAL_WORLD_SIZE"] == "3" and e["PATH"] == "/bin"
        assert e["MASTER_ADDR"] == "127.0.0.1" and e["MASTER_PORT"] == "29500"
        assert e["OMP_NUM_THREADS"] == "1" and "OMPI_COMM_WORLD_RANK" not in e
    assert torch_local_envs(2, 1, env={"OMP_NUM_THREADS": "4"})[0]["OMP_NUM_THREADS"] == "4"
    assert "OMP_NUM_THREADS" not in torch_local_envs(1, 1, env={})[0]
    from bench.world import detect_world

    assert detect_world(envs[2]) == World("torchrun", 2, 3, 2)


def test_rendezvous():
    assert rendezvous(World("torchrun", 1, 2, 1), env={}) == {"init_method": "env://"}
    mpi = World("openmpi", 3, 4, 1)
    assert rendezvous(mpi, env={"MASTER_ADDR": "node7", "MASTER_PORT": "2222"}) == {
        "init_method": "tcp://node7:2222", "rank": 3, "world_size": 4}
    agreed = rendezvous(World("slurm", 0, 8, 0), env={}, agree=lambda: ("fe80::1", 4000))
    assert agreed == {"init_method": "tcp://[fe80::1]:4000", "rank": 0, "world_size": 8}


def test_rendezvous_without_address_or_mpi4py_is_a_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mpi4py" else real(name, *a))
    with pytest.raises(UsageError, match="needs MASTER_ADDR and MASTER_PORT set"):
        rendezvous(World("slurm", 0, 2, 0), env={"MASTER_ADDR": "x"})


def test_missing_torch_is_named_without_importing_it(monkeypatch):
    import importlib.util

    from bench.backends.torch_dist import GlooBackend, NCCLBackend

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert "needs torch: pip install 'commbench[torch]'" in GlooBackend.problem()
    assert "needs torch" in NCCLBackend.problem()


def test_cuda_index():
    from bench.backends.torch_dist import _cuda_index

    assert _cuda_index(4, 2) == 2 and _cuda_index(1, 3) == 0
    with pytest.raises(UsageError, match="local rank 4 has no GPU of its own: 4 visible"):
        _cuda_index(4, 4)
    with pytest.raises(UsageError, match="no CUDA device"):
        _cuda_index(0, 0)


# --- options and op support, checked before any rank starts -----------------------------------
def _plan(*argv):
    from bench.cli import build_parser
    from bench.plan import make_plan

    return make_plan(build_parser("run").parse_args(["run", *argv]))


no_cuda = pytest.mark.skipif("have_cuda()", reason="checks the messages of a machine without CUDA")


@pytest.mark.parametrize("argv, message", [
    pytest.param(["--backend", "gloo", "--device", "cuda"],
                 "backend gloo with --device cuda: no CUDA device visible", marks=[needs_torch, no_cuda]),
    pytest.param(["--backend", "gloo", "--cuda-graph"],
                 "--cuda-graph: backend gloo cannot capture CUDA graphs", marks=needs_torch),
    pytest.param(["--backend", "mpi", "--device", "cuda"],
                 "backend mpi has no --device cuda (it runs on cpu)", marks=needs_mpi),
])
def test_device_options_are_checked(argv, message):
    with pytest.raises(UsageError) as exc:
        _plan(*argv)
    assert message in str(exc.value)


@needs_torch
@pytest.mark.parametrize("name", ["nccl", "ucc", "torch-mpi"])
def test_torch_backends_say_whether_this_torch_has_them(name, monkeypatch):
    """problem() follows torch.distributed's is_*_available: the real answer here, then each
    answer forced, so both messages are checked whatever this torch was built with."""
    from bench.backends import backend_class

    torch = installed_torch()
    cls, dist = backend_class(name), torch.distributed
    check = f"is_{cls.torch_backend}_available"
    missing = f"torch {torch.__version__} has no {cls.torch_backend} backend"
    here = dist.is_available() and getattr(dist, check)()
    assert cls.problem() == (None if here else missing)
    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, check, lambda: False)
    assert cls.problem() == missing
    monkeypatch.setattr(dist, check, lambda: True)
    assert cls.problem() is None


@needs_torch
@pytest.mark.skipif("installed_torch() is not None and installed_torch().distributed.is_nccl_available()",
                    reason="torch has nccl here")
def test_nccl_missing_is_one_line_exit_2(tmp_path):
    r = run_commbench("run", "--backend", "nccl", timeout=60, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == f"commbench: error: torch {installed_torch().__version__} has no nccl backend"


def test_primitives_of_ops():
    from bench.backends import primitives_of

    assert primitives_of(get_op("allreduce")) == {"allreduce"}
    assert primitives_of(get_op("bw")) == {"isend", "irecv", "send", "recv", "waitall"}
    assert primitives_of(get_op("barrier")) == {"barrier"}
    assert primitives_of(get_op("allreduce_inplace")) == {"allreduce_inplace"}


def test_a_backend_without_a_primitive_cannot_run_its_ops():
    from tests.fakes import FakeBackend

    assert FakeBackend.op_problem(get_op("allreduce_inplace"), None) == \
        "backend fake has no allreduce_inplace primitive"
    assert FakeBackend.op_problem(get_op("allreduce"), None) is None


class Limited(GlooBackend):
    """gloo without reduce_scatter, registered by the test below."""
    name = "limited"
    unsupported = {"reduce_scatter": "limited has no reduce_scatter"}


@needs_torch
@pytest.mark.slow
def test_unsupported_primitive_skips_under_all_and_refuses_by_name(monkeypatch):
    from bench import backends
    from bench.plan import skip_notes

    monkeypatch.setitem(backends.BACKENDS, "limited", "tests.test_torch_backends:Limited")
    with pytest.raises(UsageError,
                       match="backend limited cannot run reduce_scatter: limited has no reduce_scatter"):
        _plan("--backend", "limited", "--ops", "allreduce,reduce_scatter")
    plan = _plan("--backend", "gloo,limited", "--sizes", "64")
    assert plan.skip == {("limited", "reduce_scatter"): "limited has no reduce_scatter"}
    assert skip_notes(plan) == [
        "commbench: skipping reduce_scatter on limited: limited has no reduce_scatter"]


def test_cuda_graph_refuses_ops_with_host_steps():
    from bench.backends.torch_dist import NCCLBackend

    args = Settings(cuda_graph=True, device="cuda")
    assert "runs host code between its calls" in NCCLBackend.op_problem(get_op("prtt_rtts8"), args)
    assert NCCLBackend.op_problem(get_op("allreduce"), args) is None


@pytest.mark.slow
def test_skipped_ops_are_not_run(tmp_path):
    """The rank loop leaves out (backend, op) pairs the plan skips."""
    from bench.harness import Sampling
    from bench.plan import Plan
    from bench.rank_loop import run_spmd
    from bench.settings import settings_of
    from tests.fakes import FakeBackend

    args = argparse.Namespace(nranks=None, backend="fake", ops="all", sizes="4", dtype="int32",
                              out=str(tmp_path / "run"), timeout=0, repeats=1, seed=7, ci_target=0.02,
                              min_samples=5, max_samples=100, budget=1.0, sample_time=2.0 ** -12,
                              quiet=True, noise=False, device=None, cuda_graph=False)
    FakeBackend.corrupt = False
    plan = Plan([FakeBackend], [get_op("allreduce"), get_op("barrier")], [4], "int32",
                Sampling(sample_time_s=args.sample_time, min_samples=5), 1, True,
                {("fake", "barrier"): "fake has no barrier"}, settings=settings_of(args))
    assert run_spmd(plan, World("fake", 0, 1), argv=["run", "--fake"], clock=FakeBackend.clock).rc == 0
    assert list(load_run(tmp_path / "run")[2].op) == ["allreduce"]


# --- CUDA and NCCL (skip themselves without a GPU) ---------------------------------------------
@nccl
def test_nccl_on_one_gpu_every_op(tmp_path):
    out = tmp_path / "run"
    r = run_commbench("run", "--backend", "nccl", "-n", 1, "--sizes", "4,64K", "--out", out, *QUICK,
                      timeout=300)
    assert r.returncode == 0, r.stderr
    ops = [n for n, op in OPS.items() if op.default and op.rank_problem(1) is None]
    meta, _, _ = check_complete(out, 1, ops, ("nccl",))
    versions = meta["backends"]["nccl"]
    assert versions["device"] == "cuda" and versions["nccl"] and versions["cuda"]


@nccl
def test_nccl_with_cuda_graphs(tmp_path):
    out = tmp_path / "run"
    r = run_commbench("run", "--backend", "nccl", "-n", 1, "--cuda-graph", "--ops",
                      "allreduce,allgather,broadcast,barrier", "--sizes", "4,64K", "--out", out,
                      *QUICK, timeout=300)
    assert r.returncode == 0, r.stderr
    meta, _, _ = check_complete(out, 1, ["allreduce", "allgather", "broadcast", "barrier"], ("nccl",))
    assert meta["backends"]["nccl"]["cuda_graph"] is True


@nccl
def test_nccl_empty_graphs_are_flagged_and_timed_by_events(tmp_path):
    """Issue 11's guard: broadcast and barrier on one rank capture no GPU work; they finish
    quickly and are flagged, and --timer cuda is recorded."""
    out = tmp_path / "run"
    r = run_commbench("run", "--backend", "nccl", "-n", 1, "--cuda-graph", "--timer", "cuda",
                      "--ops", "broadcast,barrier,allreduce", "--sizes", "4,1M", "--out", out,
                      *QUICK, timeout=120)
    assert r.returncode == 0, r.stderr
    meta, _, summary = load_run(out)
    assert meta["settings"]["timer"] == "cuda" and meta["timer"]["name"] == "CUDA events"
    flags = dict(zip(summary["op"] + "@" + summary["nbytes"].astype(str), summary["flags"]))
    assert "empty-graph" in flags["broadcast@4"] and "empty-graph" in flags["broadcast@1048576"]
    assert all(f.startswith("no-op") for f in flags.values())


@nccl
@pytest.mark.skipif("not have_cuda() or installed_torch().cuda.device_count() < 2",
                    reason="NCCL needs one GPU per rank")
def test_nccl_on_two_gpus_with_gloo_beside_it(tmp_path):
    out = tmp_path / "run"
    r = run_commbench("run", "--backend", "nccl,gloo", "-n", 2, "--ops", "allreduce,pingpong,bw",
                      "--sizes", "4,1M", "--out", out, *QUICK, timeout=300)
    assert r.returncode == 0, r.stderr
    check_complete(out, 2, ["allreduce", "pingpong", "bw"], ("nccl", "gloo"))


@cuda
def test_gloo_with_cuda_tensors(tmp_path):
    out = tmp_path / "run"
    r = run_commbench("run", "--backend", "gloo", "--device", "cuda", "-n", 1, "--ops",
                      "allreduce,broadcast", "--sizes", "4,64K", "--out", out, *QUICK, timeout=300)
    assert r.returncode == 0, r.stderr
    meta, _, _ = check_complete(out, 1, ["allreduce", "broadcast"], ("gloo",))
    assert meta["backends"]["gloo"]["device"] == "cuda"
