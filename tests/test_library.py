"""The MPI libraries' default decision rules (analysis.library), forcing an algorithm
(bench.forcing), fits attributed to the algorithm that ran, and predictions that price the
library's choice. Switch points are the ones of the sources each rule cites."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from analysis import library, models
from analysis.fit_pipeline import attribute, fit_times
from analysis.predict_op import predict
from bench import forcing
from bench.cli import main as cli
from bench.core.rundir import SAMPLE_COLUMNS
from tests.conftest import needs_mpi
from tests.runs import write_synthetic_run

OMPI41 = "Open MPI v4.1.6, package: Debian OpenMPI, ident: 4.1.6, repo rev: v4.1.6, Sep 30, 2023"
OMPI50 = "Open MPI v5.0.11, package: Open MPI user@localhost Distribution, ident: 5.0.11"
MPICH4 = "MPICH Version:      4.1.2\nMPICH Release date: Wed Jun  7 15:22:45 CDT 2023"


def ompi():
    return library.rules_for(OMPI41)[0]


def native(rules, op, p, nbytes):
    return rules.choose(op, p, nbytes).native


# ---- Open MPI 4.1 / 5.0 coll_tuned_decision_fixed.c, commutative branch -------------------
@pytest.mark.parametrize("p,nbytes,want", [
    # communicator_size < 4: 8 ring, 4096 rd, 8192 ring, 16384 rd, 65536 ring, 262144 seg ring
    (2, 4, "ring"), (2, 8, "recursive_doubling"), (2, 4095, "recursive_doubling"),
    (2, 4096, "ring"), (2, 8192, "recursive_doubling"), (3, 16384, "ring"),
    (3, 65536, "segmented_ring"), (3, 262143, "segmented_ring"), (2, 262144, "rabenseifner"),
    # < 8: 16 ring, 8192 rd, else rabenseifner; < 16: 8192 rd
    (4, 8191, "recursive_doubling"), (7, 8192, "rabenseifner"), (8, 8191, "recursive_doubling"),
    (15, 8192, "rabenseifner"),
    # < 32: 64 segmented ring, 4096 rd; < 64: 128 segmented ring
    (16, 63, "segmented_ring"), (16, 64, "recursive_doubling"), (31, 4096, "rabenseifner"),
    (32, 127, "segmented_ring"), (32, 128, "rabenseifner"),
    # < 128: 262144 rd; < 256: 131072 nonoverlapping
    (64, 262143, "recursive_doubling"), (128, 131071, "nonoverlapping"),
])
def test_open_mpi_allreduce_switch_points(p, nbytes, want):
    assert native(ompi(), "allreduce", p, nbytes) == want


def test_open_mpi_allreduce_models_and_fallbacks():
    r = ompi()
    assert r.choose("allreduce", 3, 100_000).model == "ring"  # segment size 0: the plain ring
    assert r.choose("allreduce", 128, 1000).model is None  # nonoverlapping: no model
    # ring with count < p and Rabenseifner with count < p' fall back to recursive doubling
    small = r.choose("allreduce", 16, 60)  # 15 floats on 16 ranks: segmented ring chosen
    assert small.native == "segmented_ring" and small.model == "recursive_doubling"
    assert r.choose("allreduce", 2, 262144).model == "rabenseifner"
    assert "coll_tuned_decision_fixed.c" in small.why


@pytest.mark.parametrize("p,block,want", [
    (2, 1 << 20, "two_proc"), (3, 64, "recursive_doubling"), (31, 1 << 20, "recursive_doubling"),
    (32, 1023, "recursive_doubling"), (32, 1024, "neighbor"), (63, 65536, "ring"),
    (64, 511, "recursive_doubling"), (300, 64, "bruck"),
])
def test_open_mpi_allgather_is_keyed_by_the_block(p, block, want):
    assert native(ompi(), "allgather", p, block * p) == want  # S = block x p


@pytest.mark.parametrize("op,p,nbytes,want", [
    ("reduce_scatter", 2, 2 * 131071, "butterfly"), ("reduce_scatter", 2, 2 * 131072, "basic_linear"),
    ("reduce_scatter", 4, 4 * 8191, "recursive_halving"), ("reduce_scatter", 4, 4 * 8192, "butterfly"),
    ("reduce_scatter", 4, 4 << 20, "basic_linear"),
    ("broadcast", 2, 1023, "knomial"), ("broadcast", 2, 1024, "basic_linear"),
    ("broadcast", 3, 1 << 20, "binary_tree"), ("broadcast", 4, 8191, "binomial"),
    ("broadcast", 16, 1 << 20, "scatter_allgather"),
    ("alltoall", 2, 2 * 4095, "two_proc"), ("alltoall", 4, 4 * 8191, "linear_sync"),
    ("barrier", 5, 0, "linear"), ("barrier", 3, 0, "recursive_doubling"),
])
def test_open_mpi_other_ops(op, p, nbytes, want):
    assert native(ompi(), op, p, nbytes) == want


# every step of the 4..7-rank branches (communicator_size < 8), from each function of
# coll_tuned_decision_fixed.c (v4.1.x/v5.0.x); the bound below is exclusive ("total_dsize < B")
@pytest.mark.parametrize("op,key,want", [
    # ompi_coll_tuned_reduce_scatter_block_intra_dec_fixed, keyed by rcount x dsize (S/p):
    # < 8 rh, < 32 rd, < 256 butterfly, < 8192 rh, < 16384 butterfly, < 1048576 rh, linear
    ("reduce_scatter", 7, "recursive_halving"), ("reduce_scatter", 8, "recursive_doubling"),
    ("reduce_scatter", 31, "recursive_doubling"), ("reduce_scatter", 32, "butterfly"),
    ("reduce_scatter", 255, "butterfly"), ("reduce_scatter", 256, "recursive_halving"),
    ("reduce_scatter", 8191, "recursive_halving"), ("reduce_scatter", 8192, "butterfly"),
    ("reduce_scatter", 16384, "recursive_halving"), ("reduce_scatter", 1048575, "recursive_halving"),
    ("reduce_scatter", 1048576, "basic_linear"),
    # ompi_coll_tuned_bcast_intra_dec_fixed, keyed by S: < 64 binary tree, < 128 binomial,
    # < 2048 binary tree, < 8192 binomial, < 1048576 linear, chain
    ("broadcast", 63, "binary_tree"), ("broadcast", 64, "binomial"), ("broadcast", 128, "binary_tree"),
    ("broadcast", 2047, "binary_tree"), ("broadcast", 2048, "binomial"), ("broadcast", 8192, "basic_linear"),
    ("broadcast", 1048575, "basic_linear"), ("broadcast", 1048576, "chain"),
    # ompi_coll_tuned_allreduce_intra_dec_fixed, keyed by S: < 16 ring, < 8192 rd, rabenseifner
    ("allreduce", 15, "ring"), ("allreduce", 16, "recursive_doubling"),
    ("allreduce", 8191, "recursive_doubling"), ("allreduce", 8192, "rabenseifner"),
    # ompi_coll_tuned_allgather_intra_dec_fixed: recursive doubling below 32 ranks, any size
    ("allgather", 1 << 30, "recursive_doubling"),
])
@pytest.mark.parametrize("p", [4, 7])
def test_open_mpi_four_to_seven_ranks(op, key, want, p):
    nbytes = key * p if op in ("reduce_scatter", "allgather") else key
    assert native(ompi(), op, p, nbytes) == want
    assert native(library.rules_for(OMPI50)[0], op, p, nbytes) == want  # the same in 5.0


@pytest.mark.parametrize("op,p,nbytes,want,model", [
    ("allreduce", 8, 8, "recursive_doubling", "recursive_doubling"),
    ("allreduce", 8, 16, "recursive_doubling", "recursive_doubling"),  # 4 floats < pow2 8
    ("allreduce", 8, 64, "reduce_scatter_allgather", "rabenseifner"),
    ("allgather", 4, 524287, "recursive_doubling", "recursive_doubling"),
    ("allgather", 4, 524288, "ring", "ring"),
    ("allgather", 3, 81919, "brucks", "recursive_doubling"), ("allgather", 3, 81920, "ring", "ring"),
    ("reduce_scatter", 4, 524287, "recursive_halving", "recursive_halving"),
    ("reduce_scatter", 4, 524288, "pairwise", "ring"),
    ("broadcast", 4, 1 << 20, "binomial", "binomial"), ("broadcast", 8, 12288, "binomial", "binomial"),
    ("broadcast", 8, 12289, "scatter_recursive_doubling_allgather", None),
    ("broadcast", 8, 8 * 65537, "scatter_ring_allgather", "scatter_allgather"),
    ("broadcast", 12, 12 * 12289, "scatter_ring_allgather", "scatter_allgather"),
])
def test_mpich_generic_json(op, p, nbytes, want, model):
    rules, _ = library.rules_for(MPICH4)
    got = rules.choose(op, p, nbytes)
    assert (got.native, got.model) == (want, model)
    assert "generic.json" in got.why


def test_libraries_are_identified_from_meta():
    assert library.of_meta({"backend": {"name": "mpi", "library": OMPI41}})[0].version == (4, 1)
    assert library.of_meta({"backend": {"name": "mpi", "library": OMPI50}})[0].version == (5, 0)
    assert isinstance(library.of_meta({"backend": {"name": "mpi", "library": MPICH4}})[0],
                      library.MPICHRules)
    # Open MPI 5 across nodes runs coll/han; 4.0's tables are older; others unknown
    rules, why = library.of_meta({"backend": {"name": "mpi", "library": OMPI50}, "nnodes": 2})
    assert rules is None and "han" in why
    assert library.rules_for("Open MPI v4.0.3")[0] is None
    assert library.rules_for("Open MPI v6.0.0")[0] is None  # main adds decisions of its own
    assert library.rules_for("Intel(R) MPI Library 2021.10")[0] is None
    assert library.of_meta({"backend": {"name": "nccl"}})[0] is None
    assert library.of_runs([{"backend": {"name": "mpi", "library": OMPI41}},
                            {"backend": {"name": "mpi", "library": MPICH4}}])[0] is None


def test_forcing_environment_round_trips():
    for fam, version, lib in ((forcing.OPEN_MPI, (5, 0), OMPI50), (forcing.MPICH, (4, 1), MPICH4)):
        assert forcing.family(lib) == (fam, version)
        for op in ("allreduce", "allgather", "reduce_scatter", "broadcast"):
            for alg in forcing.forceable(fam, version, op):
                assert forcing.forced_in(fam, forcing.force_env(fam, op, alg)) == {op: alg}
    env = forcing.force_env(forcing.OPEN_MPI, "reduce_scatter", 3)
    assert env == {"OMPI_MCA_coll_tuned_use_dynamic_rules": "1",
                   "OMPI_MCA_coll_tuned_reduce_scatter_block_algorithm": "3"}
    # without dynamic rules Open MPI ignores the algorithm variable
    assert forcing.forced_in(forcing.OPEN_MPI, {"OMPI_MCA_coll_tuned_allreduce_algorithm": "4"}) == {}
    assert 7 not in forcing.forceable(forcing.OPEN_MPI, (4, 1), "allgather")  # 5.0 only
    assert 7 in forcing.forceable(forcing.OPEN_MPI, (5, 0), "allgather")
    # 5.0.11 rejects allreduce 7 and runs its fixed decision; two_proc needs 2 ranks
    assert 7 not in forcing.forceable(forcing.OPEN_MPI, (5, 0), "allreduce")
    assert forcing.forced_in(forcing.OPEN_MPI, forcing.force_env(forcing.OPEN_MPI, "allreduce",
                                                                 7)) == {}
    assert 6 in forcing.forceable(forcing.OPEN_MPI, (5, 0), "allgather", 2)
    assert 6 not in forcing.forceable(forcing.OPEN_MPI, (5, 0), "allgather", 3)


# ---- fits attributed to the algorithm that ran, predictions of the library's choice -------
PARAMS = {"recursive_doubling": [1.0e-6, 1 / 5e9, 0], "ring": [0.6e-6, 1 / 9e9, 0],
          "rabenseifner": [1.5e-6, 1 / 12e9, 0]}
SIZES = [64 * 4 ** k for k in range(8)]


def library_truth(p, nbytes):
    model = ompi().choose("allreduce", p, nbytes).model
    return model, float(models.predict("allreduce", model, p, nbytes, PARAMS[model]))


def library_frame(rng, counts):
    rows = []
    for p in counts:
        for n in SIZES:
            model, t = library_truth(p, n)
            for i, x in enumerate(t * np.exp(rng.normal(0, 0.02, 15))):
                rows.append(("mpi", "allreduce", "float32", n, p, "all", 0, i, x, model))
    return pd.DataFrame(rows, columns=["backend", "op", "dtype", "nbytes", "nranks", "split",
                                       "round", "sample", "time_s", "algorithm"])


@pytest.fixture(scope="module")
def attributed_fits():
    return fit_times(library_frame(np.random.default_rng(5), (2, 4, 8)), n_boot=20)


def test_each_algorithm_is_fitted_on_the_cases_it_ran(attributed_fits):
    ran = attributed_fits[attributed_fits.param == "ran_cases"]
    assert set(ran.model) == {"recursive_doubling", "ring", "rabenseifner"}
    # Rabenseifner ran from 8 KiB at 4 and 8 ranks and from 256 KiB at 2 ranks
    rab = ran[ran.model == "rabenseifner"]
    assert rab.value.sum() == 2 * 4 + 2
    beta = attributed_fits[(attributed_fits.model == "rabenseifner")
                           & (attributed_fits.param == "beta_s_per_byte")
                           & (attributed_fits.nbytes_hi >= 1 << 20)]
    assert beta.value.iloc[0] == pytest.approx(PARAMS["rabenseifner"][1], rel=0.1)


@pytest.mark.parametrize("nbytes", [64, 1024, 16384, 1 << 20])
def test_prediction_prices_the_rules_choice_at_the_asked_count(attributed_fits, nbytes):
    want_model, want = library_truth(16, nbytes)
    got = predict(attributed_fits, "allreduce", 16, nbytes, rules=ompi())
    assert got.model == want_model
    assert got.time_s == pytest.approx(want, rel=0.10)
    assert got.basis.startswith("Open MPI 4.1 coll/tuned")
    others = [n for n in got.notes if n.startswith("forced instead")]
    assert others and want_model not in others[0]


def test_algorithm_override_and_unknown_library(attributed_fits):
    forced = predict(attributed_fits, "allreduce", 16, 1 << 20, model="recursive_doubling",
                     rules=ompi())
    assert forced.model == "recursive_doubling" and "as asked" in forced.basis
    plain = predict(attributed_fits, "allreduce", 16, 1 << 20)
    assert plain.basis.startswith("commbench's selection")


def test_forced_runs_are_attributed_from_their_environment():
    metas = [{"backend": {"name": "mpi", "library": OMPI50}, "env": {}},
             {"backend": {"name": "mpi", "library": OMPI50},
              "env": forcing.force_env(forcing.OPEN_MPI, "allreduce", 4)}]
    times = pd.DataFrame({"backend": "mpi", "op": "allreduce", "dtype": "float32",
                          "nbytes": [64, 64], "nranks": [4, 4], "split": "all", "round": 0,
                          "sample": 0, "time_s": 1e-6, "run": [0, 1]})
    out, why = attribute(times, metas)
    assert list(out.algorithm) == ["recursive_doubling", "ring"]
    assert list(out.forced) == [False, True] and "Open MPI 5.0" in why


def write_sweep(root, lib):
    rng = np.random.default_rng(3)
    for p in (2, 4, 8):
        rows = []
        for n in SIZES:
            _, t = library_truth(p, n)
            for s, x in enumerate(t * np.exp(rng.normal(0, 0.02, 12))):
                for rank in range(p):
                    rows.append(("mpi", "allreduce", "float32", n, p, "all", 0, s, rank, 1, x))
        write_synthetic_run(root / f"n{p}", pd.DataFrame(rows, columns=SAMPLE_COLUMNS), nranks=p,
                            backend={"name": "mpi", "library": lib}, ops={}, dtype="float32")
    (root / "sweep.json").write_text(json.dumps({"nranks": [2, 4, 8]}))


@pytest.mark.parametrize("lib,says", [(OMPI41, "algorithm  Open MPI 4.1 coll/tuned: rabenseifner"),
                                      ("SomeMPI 1.0", "commbench's own selection")])
@pytest.mark.slow
def test_predict_command_says_which_algorithm_and_why(tmp_path, capsys, lib, says):
    write_sweep(tmp_path / "s", lib)
    rc = cli(["predict", "--fits", str(tmp_path / "s"), "--op", "allreduce", "--nranks", "16",
              "--nbytes", "1M"])
    out = capsys.readouterr().out
    assert rc == 0 and says in out


def test_force_algorithms_needs_the_mpi_backend(tmp_path, capsys):
    rc = cli(["sweep", "-n", "2", "--backend", "gloo", "--ops", "allreduce",
              "--force-algorithms", "--out", str(tmp_path / "s")])
    assert rc == 2 and "--force-algorithms needs --backend mpi" in capsys.readouterr().err


# ---- what the installed Open MPI runs: coll/tuned's *_intra_do_this traced -----------------
def _check_rules():
    """tests/benchmarks/check_rules.py (its tracer), loaded as a module."""
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location(
        "check_rules", ROOT / "tests" / "benchmarks" / "check_rules.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _installed_open_mpi():
    from tests.conftest import have_mpi

    if not have_mpi() or not shutil.which(os.environ.get("CC", "cc")):
        return None
    found = forcing.family(forcing.mpi_library())
    return found if found and found[0] == forcing.OPEN_MPI and found[1] >= (4, 1) else None


needs_open_mpi_and_cc = pytest.mark.skipif(
    _installed_open_mpi() is None, reason="needs Open MPI >= 4.1 (mpi4py) and a C compiler")
TRACED_OPS = "allreduce,allgather,reduce_scatter,broadcast,alltoall,barrier"


@needs_mpi
@needs_open_mpi_and_cc
@pytest.mark.timeout(240)
def test_open_mpi_runs_the_algorithm_the_rules_name(tmp_path):
    """Not timing: the algorithm number coll/tuned hands to *_intra_do_this in each case of a
    default run equals the rules' (2 ranks: the two_proc special cases; 4 ranks: oversubscribed
    here, the count where timing could not tell)."""
    from tests.conftest import QUICK, commbench_env

    rules_check = _check_rules()
    traced = rules_check.traced_runs(tmp_path, "2,4", TRACED_OPS, "4:1M:16", 0.002,
                                     env=commbench_env(), run_args=QUICK)
    res = rules_check.check_trace(tmp_path, traced)
    assert set(res.p) == {2, 4} and set(res.op) == set(TRACED_OPS.split(","))
    assert res.ok.all(), res[~res.ok].to_string()


@needs_mpi
@needs_open_mpi_and_cc
@pytest.mark.timeout(240)
def test_forcing_runs_the_forced_algorithm(tmp_path):
    from tests.conftest import QUICK, commbench_env

    fam, _ = _installed_open_mpi()
    env = {**commbench_env(), **forcing.force_env(fam, "allgather", 4),
           **forcing.force_env(fam, "broadcast", 9)}
    traced = _check_rules().traced_runs(tmp_path, "3", "allgather,broadcast", "256:64K:16",
                                        0.002, env=env, run_args=QUICK)
    ran = traced.groupby("coll").algorithm.agg(set)
    assert ran["allgather"] == {4} and ran["bcast"] == {9}
