"""`commbench workload`: parameter counts of presets against their published sizes; the schedule
of a small model, for every kind of parallelism, against counts and sizes worked out by hand
here; the layout groups (bench.nodes group:SIZE:STRIDE); where a group's prediction comes from;
and end to end on 4 local ranks: tp 2 × dp 2 measured and predicted from a tiny sweep."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from analysis import models
from analysis.fit_pipeline import fit_times
from analysis.transformer import load_model, model_from_dict, parameter_counts, presets
from analysis.transformer_layout import Layout
from analysis.transformer_output import read_csv
from analysis.transformer_schedule import schedule
from analysis.workload_time import Timed, members_per_node, predict_row
from bench import nodes
from bench.core.errors import UsageError
from tests.conftest import QUICK, commbench_env, mpiexec, needs_mpi, run_commbench

# A model small enough to count by hand: head dim 8 / 4 = 2.
#   attention 2·8·4·2 + 2·8·2·2 = 192, MLP 3·8·16 = 384, norms 2·8 = 16: a layer is 592
#   embedding = output = 12·8 = 96, final norm 8
SMALL = {"layers": 4, "hidden": 8, "ffn": 16, "heads": 4, "kv_heads": 2, "vocab": 12}
# The same with 4 experts, top 2, in every layer: a layer's experts 4·384, router 8·4 = 32
MOE = {**SMALL, "layers": 2, "experts": 4, "top_k": 2}


def small(**kw):
    return model_from_dict("small", {**SMALL, **kw}, "test")


def rows_of(model, **layout):
    rows, _ = schedule(model, Layout(**layout))
    return {(r.phase, r.op, r.group, r.group_size, r.nbytes, r.overlap): r.count for r in rows}


# ---------------------------------------------------------------- parameters
@pytest.mark.parametrize("name", list(presets()))
def test_presets_match_their_published_size(name):
    model = load_model(name)
    total = parameter_counts(model)["total"]
    assert model.source and model.published_params
    assert abs(total - model.published_params) <= 0.02 * model.published_params, (name, total)


def test_llama_3_8b_by_hand():
    m = load_model("llama-3-8b")  # any case
    c = parameter_counts(m)
    layer = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096
    assert c["total"] == 32 * layer + 2 * 128256 * 4096 + 4096 == 8_030_261_248
    assert abs(c["total"] / 8.03e9 - 1) < 0.02


def test_small_and_moe_counts():
    c = parameter_counts(small())
    assert c["total"] == 4 * 592 + 96 + 96 + 8
    c = parameter_counts(model_from_dict("moe", MOE, "test"))
    assert c["experts"] == 2 * 4 * 384 and c["router"] == 2 * 32
    assert c["total"] == 2 * 192 + 2 * 4 * 384 + 2 * 32 + 5 * 8 + 96 + 96
    assert c["active"] == c["total"] - 2 * 2 * 384  # 2 of 4 experts per token


# ---------------------------------------------------------------- schedules by hand
def test_tensor_parallel():
    # b 2, s 4, h 8, bf16: b·s·h·e = 128 B; 2 per layer × 4 layers × 3 micro-batches = 24
    got = rows_of(small(), tp=2, micro_batch=2, seq=4, grad_accum=3)
    tp = {k: v for k, v in got.items() if k[2] == "tp"}
    assert tp == {("forward", "allreduce", "tp", 2, 128, False): 24,
                  ("backward", "allreduce", "tp", 2, 128, False): 24}


def test_sequence_parallel():
    got = rows_of(small(), tp=2, micro_batch=2, seq=4, grad_accum=3, sequence_parallel=True)
    tp = {k: v for k, v in got.items() if k[2] == "tp"}
    assert tp == {(phase, op, "tp", 2, 128, False): 24 for phase in ("forward", "backward")
                  for op in ("allgather", "reduce_scatter")}


def test_pipeline():
    # pp 2: 2 layers a stage; one b·s·h message per boundary and micro-batch each way
    got = rows_of(small(), pp=2, micro_batch=2, seq=4, grad_accum=3)
    assert got == {("forward", "pingpong", "pp", 2, 128, False): 3,
                   ("backward", "pingpong", "pp", 2, 128, False): 3}
    # with tp 2 and sequence parallelism the message is split over the tp ranks; tp counts
    # the stage's 2 layers
    got = rows_of(small(), tp=2, pp=2, micro_batch=2, seq=4, sequence_parallel=True)
    assert got[("forward", "pingpong", "pp", 2, 64, False)] == 1
    assert got[("forward", "allgather", "tp", 2, 128, False)] == 2 * 2


def test_busiest_stage_holds_the_output_layer():
    # stage 0: 2 layers + embedding = 1280; stage 1: 2 layers + output + final norm = 1288
    _, share = schedule(small(), Layout(pp=2))
    assert (share.stage, share.dense) == (1, 2 * 592 + 96 + 8)


def test_data_parallel_zero0_buckets():
    # a rank holds 2568 parameters = 5136 B of bf16 gradients; buckets of 1000 B = 500
    # elements: 5 full ones and one of 68 elements (136 B)
    got = rows_of(small(), dp=4, bucket=1000, grad_accum=3)
    assert got == {("backward", "allreduce", "dp", 4, 1000, True): 5,
                   ("backward", "allreduce", "dp", 4, 136, True): 1}
    # float32 gradients: 10272 B in buckets of 250 elements: 10 full ones and 68 elements
    got = rows_of(small(), dp=4, bucket=1000, grad_dtype="float32")
    assert got == {("backward", "allreduce", "dp", 4, 1000, True): 10,
                   ("backward", "allreduce", "dp", 4, 272, True): 1}


def test_data_parallel_zero1_and_zero2():
    # dp 3: buckets padded to a multiple of 3 elements: 500 -> 501 (1002 B), 68 -> 69 (138 B)
    z1 = rows_of(small(), dp=3, zero=1, bucket=1000, grad_accum=3)
    assert z1 == {("backward", "reduce_scatter", "dp", 3, 1002, True): 5,
                  ("backward", "reduce_scatter", "dp", 3, 138, True): 1,
                  ("step", "allgather", "dp", 3, 1002, False): 5,
                  ("step", "allgather", "dp", 3, 138, False): 1}
    # ZeRO 2 reduces the partitioned gradients every micro-batch
    z2 = rows_of(small(), dp=3, zero=2, bucket=1000, grad_accum=3)
    assert z2[("backward", "reduce_scatter", "dp", 3, 1002, True)] == 15
    assert z2[("backward", "reduce_scatter", "dp", 3, 138, True)] == 3
    assert z2[("step", "allgather", "dp", 3, 1002, False)] == 5


def test_data_parallel_zero3():
    # per layer (592 parameters = 1184 B) and micro-batch: gather, re-gather, reduce-scatter;
    # the root unit (96 + 96 + 8 = 200 = 400 B) gathered once and reduced per micro-batch
    got = rows_of(small(), dp=4, zero=3, grad_accum=2)
    assert got == {("forward", "allgather", "dp", 4, 1184, True): 8,
                   ("forward", "allgather", "dp", 4, 400, True): 2,
                   ("backward", "allgather", "dp", 4, 1184, True): 8,
                   ("backward", "reduce_scatter", "dp", 4, 1184, True): 8,
                   ("backward", "reduce_scatter", "dp", 4, 400, True): 2}
    # with tp 2 the layer is 192/2 + 384/2 + 16 = 304 parameters, padded to 304 (608 B)
    got = rows_of(small(), tp=2, dp=4, zero=3)
    assert got[("forward", "allgather", "dp", 4, 608, True)] == 4


def test_expert_parallel():
    moe = model_from_dict("moe", MOE, "test")
    # b 1, s 4, top 2, h 8: 64 elements = 128 B per all-to-all; dispatch + combine per MoE
    # layer (2) and micro-batch (1), in forward and in backward
    got = rows_of(moe, dp=4, ep=2, seq=4)
    assert got[("forward", "alltoall", "ep", 2, 128, False)] == 4
    assert got[("backward", "alltoall", "ep", 2, 128, False)] == 4
    # gradients: dense 2·(192 + 32 + 16) + 96 + 96 + 8 = 680 (1360 B) over dp 4; experts
    # 2 layers × 2 experts × 384 = 1536 (3072 B) over the expert-data-parallel group of 2
    assert got[("backward", "allreduce", "dp", 4, 1360, True)] == 1
    assert got[("backward", "allreduce", "edp", 2, 3072, True)] == 1
    # without expert parallelism a rank holds all 4 experts of both layers, reduced with the
    # rest over dp
    got = rows_of(moe, dp=4, seq=4)
    assert got == {("backward", "allreduce", "dp", 4, 2 * (680 + 4 * 384 * 2), True): 1}


def test_layout_groups_as_megatron_places_them():
    assert Layout(tp=2, dp=3, pp=2).groups() == {"tp": (2, 1), "pp": (2, 6), "ep": (1, 2),
                                                 "dp": (3, 2), "edp": (3, 2)}
    assert Layout(tp=2, dp=4, ep=2).groups()["ep"] == (2, 2)
    assert Layout(tp=2, dp=4, ep=2).groups()["edp"] == (2, 4)


@pytest.mark.parametrize("data,message", [
    ({**SMALL, "layers": 0}, "layers must be an integer"),
    ({k: v for k, v in SMALL.items() if k != "vocab"}, "missing vocab"),
    ({**SMALL, "hiden": 3}, "unknown key 'hiden'"),
    ({**SMALL, "kv_heads": 3}, "not a multiple of kv_heads"),
    ({**SMALL, "experts": 4, "top_k": 5}, "top_k must be between"),
    ({**SMALL, "experts": 4, "top_k": 1, "moe_layers": [9]}, "moe_layers must be"),
    ({**SMALL, "top_k": 1}, "need experts"),
])
def test_bad_models(data, message):
    with pytest.raises(UsageError, match=message):
        model_from_dict("bad", data, "test")


@pytest.mark.parametrize("layout,message", [
    (dict(tp=3), "does not divide"), (dict(pp=3), "does not divide"),
    (dict(ep=2), "has no experts"), (dict(zero=4), "--zero"),
    (dict(dtype="int7"), "dtype"), (dict(seq=0), "--seq"),
])
def test_bad_layouts(layout, message):
    with pytest.raises(UsageError, match=message):
        schedule(small(), Layout(**layout))


def test_cli_writes_csv_and_prints_bytes_per_group(tmp_path):
    model = tmp_path / "small.json"
    model.write_text(json.dumps(SMALL))
    r = run_commbench("workload", "--model", model, "--tp", "2", "--dp", "2", "--seq", "4",
                      "--micro-batch", "2", "--out", tmp_path / "w", timeout=60)
    assert r.returncode == 0, r.stderr
    rows = read_csv(tmp_path / "w" / "workload.csv")
    assert {(x.group, x.op, x.nbytes, x.count) for x in rows} == {
        ("tp", "allreduce", 128, 8), ("dp", "allreduce", 2 * (4 * 304 + 48 + 48 + 8), 1)}
    assert "bytes per step per group: tp 2 KiB" in r.stdout
    assert "2.57 K parameters" in r.stdout
    meta = json.loads((tmp_path / "w" / "workload.json").read_text())
    assert meta["groups"]["dp"] == [2, 2] and meta["parameters"]["total"] == 2568


@pytest.mark.parametrize("argv,message", [
    (["--model", "no-such-model"], "no such preset or file"),
    (["--model", "Llama-3-8B", "--tp", "3"], "does not divide"),
    (["--model", "Llama-3-8B", "--nranks", "64"], "go with --fits"),
    (["--model", "Llama-3-8B", "--bucket", "lots"], "--bucket"),
    (["--model", "Llama-3-8B", "--tp", "2", "--measure", "-n", "3"], "needs tp × pp × dp = 2"),
    (["--model", "Llama-3-8B", "--measure", "--ops", "allreduce"], "sets their --ops"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, argv, message):
    r = run_commbench("workload", "--out", tmp_path / "w", *argv, timeout=60)
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr


# ---------------------------------------------------------------- layout groups in bench.nodes
def test_group_splits():
    hosts = ["a"] * 12
    assert nodes.parse_splits("group:3:2,intra") == ("group:3:2", "intra")
    assert nodes.split_size("group:3:2", hosts) == 3
    assert nodes.members("group:3:2", 5, hosts) == [1, 3, 5]
    assert nodes.members("group:3:2", 7, hosts) == [7, 9, 11]
    assert nodes.members("group:2:1", 7, hosts) == [6, 7]
    assert nodes.members("group:2:6", 7, hosts) == [1, 7]
    # every rank in exactly one group of each split
    for split in ("group:2:1", "group:3:2", "group:2:6"):
        groups = {tuple(nodes.members(split, r, hosts)) for r in range(12)}
        assert sorted(r for g in groups for r in g) == list(range(12))
    for bad in ("group:0:1", "group:2", "group:a:1", "groups"):
        with pytest.raises(UsageError):
            nodes.parse_splits(bad)
    with pytest.raises(UsageError, match="multiple of 8"):
        nodes.split_size("group:4:2", ["a"] * 12)
    assert nodes.group_split(4, 2) == "group:4:2"


def test_members_per_node():
    assert members_per_node(8, 1, 8) == 8    # tp 8 inside a node
    assert members_per_node(64, 8, 8) == 1   # dp across tp 8: one per node
    assert members_per_node(4, 2, 8) == 4    # dp 4 across tp 2: one node
    assert members_per_node(8, 2, 8) == 4    # dp 8 across tp 2: two nodes of 4


# ---------------------------------------------------------------- where predictions come from
def times(rng, op, counts, split, fn):
    rows = []
    for p in counts:
        for n in 2.0 ** np.arange(10, 25):
            for i, t in enumerate(fn(p, n) * np.exp(rng.normal(0, 0.02, 12))):
                rows.append(("mpi", op, "float32", int(n), p, split, 0, i, t))
    return pd.DataFrame(rows, columns=["backend", "op", "dtype", "nbytes", "nranks", "split",
                                       "round", "sample", "time_s"])


FAST, SLOW = [2e-6, 1 / 50e9, 0], [20e-6, 1 / 1e9, 0]  # (α, β, γ) inside a node, across nodes


def hockney(c):
    return lambda p, n: c[0] + n * c[1]


TP8_MODEL = model_from_dict("m", {**SMALL, "layers": 2, "hidden": 1024, "heads": 8, "kv_heads": 8,
                                  "ffn": 4096, "vocab": 1024}, "test")


@pytest.mark.slow
def test_groups_inside_and_across_nodes_use_their_fits():
    """tp 8 inside a node of 8: the intra-node allreduce fit; dp 4 across it (one rank per
    node): the ring with the inter-node pingpong link; without node information: flat."""
    rng = np.random.default_rng(3)
    fits = fit_times(pd.concat([
        times(rng, "allreduce", (8,), "intra", hockney(FAST)),
        times(rng, "pingpong", (2,), "inter", hockney(SLOW)),
        times(rng, "allreduce", (4,), "all", hockney(FAST))]), n_boot=10)
    lay = Layout(tp=8, dp=4, seq=1024)
    rows = {r.group: r for r in schedule(TP8_MODEL, lay)[0] if r.phase == "backward"}
    tp, dp = rows["tp"], rows["dp"]
    got = predict_row(fits, "mpi", tp, lay, 8)
    assert isinstance(got, Timed)
    assert abs(got.time_s / (FAST[0] + tp.nbytes * FAST[1]) - 1) < 0.1
    got = predict_row(fits, "mpi", dp, lay, 8)
    want = float(models.predict("allreduce", "ring", 4, dp.nbytes, SLOW))
    assert isinstance(got, Timed) and "pingpong" in got.model
    assert abs(got.time_s / want - 1) < 0.1
    flat = predict_row(fits, "mpi", dp, lay, None)
    assert abs(flat.time_s / (FAST[0] + dp.nbytes * FAST[1]) - 1) < 0.1
    assert "alltoall" in predict_row(fits, "mpi", replace(dp, op="alltoall"), lay, None)


def test_a_group_over_nodes_with_several_ranks_each_takes_the_two_level_model():
    """dp 4 across tp 8 on nodes of 16: 2 ranks of the group per node on 2 nodes. Every op of
    analysis.predict_hierarchical.HIERARCHY (here reduce_scatter, as ZeRO sends it) is intra on 2 ranks of
    S + inter on 2 nodes of S/2, not the flat fit."""
    rng = np.random.default_rng(4)
    fits = fit_times(pd.concat([
        times(rng, "reduce_scatter", (2,), "intra", hockney(FAST)),
        times(rng, "pingpong", (2,), "inter", hockney(SLOW)),
        times(rng, "reduce_scatter", (4,), "all", hockney(FAST))]), n_boot=10)
    lay = Layout(tp=8, dp=4, seq=1024)
    dp = next(r for r in schedule(TP8_MODEL, lay)[0] if r.group == "dp")
    row = replace(dp, op="reduce_scatter")
    got = predict_row(fits, "mpi", row, lay, 16)
    assert isinstance(got, Timed) and got.model.startswith("hierarchical"), got
    want = FAST[0] + row.nbytes * FAST[1] + float(
        models.predict("reduce_scatter", "ring", 2, row.nbytes / 2, SLOW))
    assert abs(got.time_s / want - 1) < 0.1 and not any("two-level" in x for x in got.notes)


# ---------------------------------------------------------------- end to end
@needs_mpi
@pytest.mark.timeout(150)
def test_tp2_dp2_measured_and_predicted_on_four_ranks(tmp_path):
    start = time.monotonic()
    model = tmp_path / "tiny.json"
    # act: 64·64·2 B = 8 KiB; gradients of a rank: 2·(6144 + 12288 + 128) + 2·16384 + 64
    # = 69952 parameters = 139904 B: inside the swept sizes
    model.write_text(json.dumps({"layers": 2, "hidden": 64, "ffn": 128, "heads": 4,
                                 "kv_heads": 2, "vocab": 512}))
    sweep = tmp_path / "sweep"
    r = run_commbench("sweep", "--nranks", "2,4", "--ops", "allreduce", "--sizes", "4K:256K:4",
                      "--out", sweep, *QUICK, timeout=90)
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp_path / "w"
    r = run_commbench("workload", "--model", model, "--seq", "64", "--tp", "2", "--dp", "2",
                      "--fits", sweep, "--nranks", "8", "--out", out, "--measure", "-n", "4",
                      *QUICK, timeout=90)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = read_csv(out / "workload.csv")
    assert {(x.group, x.nbytes, x.count) for x in rows} == {("tp", 8192, 4), ("dp", 139904, 1)}
    for group, split in (("tp", "group:2:1"), ("dp", "group:2:2")):
        summary = pd.read_csv(out / "measure" / group / "summary.csv")
        assert set(summary.split) == {split} and set(summary.nranks) == {2}
    t = pd.read_csv(out / "workload_times.csv")
    measured, predicted = t[t.source == "measured"], t[t.source == "predicted"]
    assert len(measured) == 3 and (measured.step_s > 0).all()
    assert set(predicted.nranks) == {4, 8} and len(predicted) == 6
    assert (predicted.step_low_s <= predicted.step_s).all()
    assert np.allclose(measured.step_s, measured.time_s * measured["count"])
    assert "measured/step: total" in r.stdout and "predicted/step [low, high]: total" in r.stdout
    assert "at 8 ranks (tp 2, pp 1, dp 4)" in r.stdout
    assert time.monotonic() - start < 120
    assert math.isfinite(float(t.step_s.sum()))


@needs_mpi
@pytest.mark.timeout(90)
def test_measure_under_an_outside_mpiexec(tmp_path):
    """Every rank runs `commbench workload`; the runs are SPMD on the launcher's ranks; rank 0
    alone reports, and no other rank loads pandas."""
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps({"layers": 2, "hidden": 64, "ffn": 128, "heads": 4,
                                 "kv_heads": 2, "vocab": 512}))
    out = tmp_path / "w"
    argv = [mpiexec(), "-n", "4", "--oversubscribe", sys.executable, "-X", "importtime", "-m",
            "bench.cli", "workload", "--model", str(model), "--seq", "64", "--tp", "2",
            "--dp", "2", "--out", str(out), "--measure", *QUICK]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=80, env=commbench_env())
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("measured/step: total") == 1
    assert r.stderr.count("| analysis.transformer\n") == 4  # every rank derived the layout
    assert r.stderr.count("| pandas\n") == 1  # rank 0 alone, to read the runs
    for group in ("tp", "dp"):
        assert (out / "measure" / group / "summary.csv").exists()
    t = pd.read_csv(out / "workload_times.csv")
    assert set(t.source) == {"measured"} and len(t) == 3
    # outside a launcher --out may default; under one every rank must name the same
    r = subprocess.run(argv[:argv.index("--out")] + ["--measure", *QUICK], capture_output=True,
                       text=True, timeout=60, env=commbench_env())
    assert r.returncode != 0 and "needs --out" in r.stderr
