"""commbench triage on synthetic run directories: node and link verdicts from pairs, intra-node
collectives against the fleet and references, skew, the drain list, exit statuses; the time
analysis (last rank, spike labels, when)."""
import numpy as np
import pandas as pd
import pytest

from analysis import timeline, triage_find, triage_verdicts
from analysis.robust_z import robust_z, verdict_of
from analysis.run_frames import summarize_samples
from bench.cli import main as cli
from bench.core.rundir import SAMPLE_COLUMNS
from bench.ops.pairs import pairing_rounds
from tests.conftest import run_cli
from tests.runs import write_synthetic_run


def write(path, rows, hosts, nranks):
    df = pd.DataFrame(rows, columns=SAMPLE_COLUMNS + ["peer"])
    return write_synthetic_run(path, df, summarize_samples(df[SAMPLE_COLUMNS]), nranks=nranks,
                               nnodes=len(set(hosts)), hosts=hosts, backend={"name": "mpi"}, ops={})


def pairs_run(path, nnodes=8, slow_nodes=(), slow_links=(), factor=3.0, noise=0.03, seed=0,
              nbytes=1 << 20, samples=8):
    """One rank per node; a link's time = S / 1 GB/s × (factor if it touches a slow node or is a
    slow link) × lognormal noise, the same on both ranks."""
    rng = np.random.default_rng(seed)
    hosts = [f"n{i:02d}" for i in range(nnodes)]
    rows = []
    for pairing, peers in enumerate(pairing_rounds(nnodes)):
        for s in range(samples):
            for rank, peer in enumerate(peers):
                if peer < 0 or rank > peer:
                    continue
                slow = (hosts[rank] in slow_nodes or hosts[peer] in slow_nodes
                        or (hosts[rank], hosts[peer]) in slow_links)
                t = nbytes / 1e9 * (factor if slow else 1.0) * float(np.exp(rng.normal(0, noise)))
                for r, p in ((rank, peer), (peer, rank)):
                    rows.append(("mpi", "pairs", "uint8", nbytes, 2, "all", 0,
                                 pairing * samples + s, r, 1, t, p))
    return write(path, rows, hosts, nnodes)


def coll_run(path, nnodes=6, per_node=2, split="intra", slow=None, factor=1.6, last=None,
             samples=30, noise=0.02, seed=1, nbytes=1 << 20):
    """allreduce with --split intra (per_node ranks per node) or over everything; rank `last`
    always the slowest by a hair (skew)."""
    rng = np.random.default_rng(seed)
    hosts = [f"n{i:02d}" for i in range(nnodes) for _ in range(per_node)]
    n = per_node if split == "intra" else len(hosts)
    rows = []
    for s in range(samples):
        for rank, host in enumerate(hosts):
            t = nbytes / 2e9 * (factor if host == slow else 1.0) * float(np.exp(rng.normal(0, noise)))
            if last is not None:
                t = t * (1.2 if rank == last else 1.0)
            rows.append(("mpi", "allreduce", "float32", nbytes, n, split, 0, s, rank, 1, t, -1))
    return write(path, rows, hosts, len(hosts))


def test_robust_z_and_the_rules():
    z, med = robust_z([10, 10.5, 9.5, 10, 3])
    assert med == 10 and z[-1] == pytest.approx(0.6745 * (3 - 10) / 0.5)
    assert verdict_of(-3.5, 0.5) == "drain"
    assert verdict_of(-3.5, 0.85) == "warn"   # far in z, but only 15% below
    assert verdict_of(-2.5, 0.5) == "warn"
    assert verdict_of(-50, 0.95) == "ok"      # MAD ~ 0: the floor keeps noise ok
    z, _ = robust_z([1, 1, 1, 0.5])
    assert z[-1] == -np.inf


@pytest.mark.slow
def test_slow_node_in_pairs_is_drained_and_its_links_are_its_own(tmp_path, capsys):
    pairs = pairs_run(tmp_path / "pairs", slow_nodes={"n03"})
    drain = tmp_path / "drain.txt"
    rc, out, err = run_cli(capsys, "triage", pairs, "--drain", drain)
    assert rc == 1, out + err
    assert drain.read_text() == "n03\n"
    assert "drain (1): n03" in out
    assert "drain  node n03" in out and "link " not in out.split("not ok:")[1].split("nodes:")[0]
    assert "nodes: 7 ok, 0 warn, 1 drain" in out
    assert "7 slow through a warn/drain node" in out
    assert "robust z = 0.6745" in out  # the rules are stated


@pytest.mark.slow
def test_slow_link_is_a_link_not_a_node(tmp_path, capsys):
    pairs = pairs_run(tmp_path / "pairs", slow_links={("n01", "n05")})
    rc, out, _ = run_cli(capsys, "triage", pairs)
    assert rc == 0  # links are not hosts: nothing to drain
    assert "drain  link n01-n05" in out and "nodes: 8 ok, 0 warn, 0 drain" in out
    assert "links: 27 ok, 0 warn, 1 drain" in out


@pytest.mark.slow
def test_healthy_fleet_exits_0_with_an_empty_drain_file(tmp_path, capsys):
    pairs = pairs_run(tmp_path / "pairs", noise=0.05)
    coll = coll_run(tmp_path / "coll")
    drain = tmp_path / "drain.txt"
    rc, out, _ = run_cli(capsys, "triage", pairs, coll, "--drain", drain)
    assert rc == 0 and drain.read_text() == "" and "drain (0): none" in out
    assert "not ok:" not in out


@pytest.mark.slow
def test_intra_node_collectives_against_the_fleet_and_a_minimum(tmp_path, capsys):
    coll = coll_run(tmp_path / "coll", slow="n02")
    result = triage_verdicts.triage([coll])
    assert result.drain() == ["n02"]
    # busbw of 2 ranks' allreduce = algbw x 2(n-1)/n = algbw: 2 GB/s, the slow node 1.25 GB/s
    rc, out, _ = run_cli(capsys, "triage", coll_run(tmp_path / "coll2", slow=None),
                         "--min", "allreduce:1M=2.2G")
    assert rc == 1 and "drain (6): n[00-05]" in out and "against --min minimum 2.2 GB/s" in out
    rc, out, _ = run_cli(capsys, "triage", tmp_path / "coll2", "--min", "allreduce:1M=1.5G")
    assert rc == 0


@pytest.mark.slow
def test_skew_warns_but_never_drains(tmp_path, capsys):
    coll = coll_run(tmp_path / "coll", per_node=1, split="all", last=4)
    rc, out, _ = run_cli(capsys, "triage", coll)
    assert rc == 0
    assert "warn   node n04" in out and "rank 4 last in 100% of 30 samples" in out


@pytest.mark.slow
def test_runs_combine_by_host(tmp_path):
    pairs = pairs_run(tmp_path / "pairs", nnodes=6, slow_nodes={"n02"})
    coll = coll_run(tmp_path / "coll", slow="n02")
    result = triage_verdicts.triage([pairs, coll])
    assert result.drain() == ["n02"]
    assert {e.run for e in result.nodes["n02"] if e.verdict == "drain"} == {"pairs", "coll"}


@pytest.mark.slow
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    rc, _out, err = run_cli(capsys, "triage", tmp_path / "missing")
    assert rc == 2 and err.startswith("commbench: error:") and err.count("\n") == 1
    two = coll_run(tmp_path / "two", nnodes=2, per_node=1, split="all")  # nothing to judge
    rc, _, err = run_cli(capsys, "triage", two)
    assert rc == 2 and "nothing to judge" in err
    pairs = pairs_run(tmp_path / "pairs", slow_nodes={"n01"})
    rc, _, err = run_cli(capsys, "triage", pairs, "--drain", tmp_path / "no" / "such" / "dir" / "f")
    assert rc == 2 and "cannot write" in err


# --- time ------------------------------------------------------------------------------------
def test_spikes_are_labelled_and_placed_in_time():
    rng = np.random.default_rng(3)
    rows = []
    for s in range(40):
        for rank in range(4):  # two independent pairs: a late rank delays only itself
            t = 1e-3 * float(np.exp(rng.normal(0, 0.02)))
            if s == 10:
                t *= 3            # every rank slow: system-wide
            if s == 25 and rank == 2:
                t *= 4            # one rank late: straggler
            rows.append(("mpi", "pingpong", "uint8", 1024, 2, "group:2:1", 0, s, rank, 10, t, -1))
    df = pd.DataFrame(rows, columns=SAMPLE_COLUMNS + ["peer"])
    table = timeline.per_sample(df, ["a", "b", "c", "d"])
    assert len(table) == 40 and (np.diff(table["at_s"]) > 0).all()
    spikes = table[table["spike"]]
    assert list(spikes["sample"]) == [10, 25]
    assert list(spikes["label"]) == ["system-wide", "straggler"]
    assert spikes["straggler"].iloc[1] == 2 and table.loc[25, "last_rank"] == 2
    # at_s: the measured time before the sample (10 calls x ~1 ms per sample)
    assert table.loc[25, "at_s"] == pytest.approx(0.01 * 25 + 0.02 * 2, rel=0.1)
    lines = timeline.describe(table, ["a", "b", "c", "d"])
    assert any("straggler rank 2 (c)" in line for line in lines)
    shares = timeline.last_shares(table)
    assert shares["share"].sum() == pytest.approx(1.0)


@pytest.mark.slow
def test_nccl_tests_per_iteration_json_gets_the_same_time_analysis(tmp_path, capsys):
    """nccl-tests 2.19 -I 1 -J: per-process per-iteration times become per-rank samples."""
    import json

    from analysis.runsamples import load_run

    rng = np.random.default_rng(5)
    procs, iters = 4, 30
    results = []
    for size in (1 << 20, 1 << 24):
        per = [[float(100 * size / (1 << 20) * np.exp(rng.normal(0, 0.02))) for _ in range(iters)]
               for _ in range(procs)]
        for p in range(procs):
            per[p][12] *= 3           # every process: system-wide
        per[2][7] *= 4                # one process: straggler
        times = [max(per[p][i] for p in range(procs)) for i in range(iters)]
        results.append({"size": size, "count": size // 4, "type": "float", "redop": "sum", "root": -1,
                        "out_of_place": {"time": sum(times) / iters, "alg_bw": 1, "bus_bw": 1, "nwrong": 0},
                        "in_place": {"time": sum(times) / iters, "alg_bw": 1, "bus_bw": 1, "nwrong": 0},
                        "out_of_place_per_iter": {"skipped_iterations": 0, "times_us": times,
                                                  "per_process_max_times_us": per}})
    doc = {"version": 3, "args": ["./build/all_reduce_perf", "-I", "1", "-J", "x.json"],
           "config": {"nthreads": 1, "ngpus": 1, "iterations": iters, "aggregated_iterations": 1,
                      "per_iter_timing": True,
                      "devices": [{"rank": r, "hostname": f"g{r}"} for r in range(procs)]},
           "results": results}
    src = tmp_path / "ar.json"
    src.write_text(json.dumps(doc))
    assert cli(["import", str(src), "--out", str(tmp_path / "imp")]) == 0
    capsys.readouterr()
    meta, samples, summary = load_run(tmp_path / "imp")
    assert len(samples) == 2 * procs * iters and set(samples["rank"]) == set(range(procs))
    assert set(samples["round"]) == {0} and set(samples["sample"]) == set(range(iters))
    per_iteration_max = samples.groupby(["nbytes", "sample"])["time_s"].max()
    medians = summary.set_index("nbytes")["median_s"]
    for size in (1 << 20, 1 << 24):  # the median over iterations of the max over processes
        assert medians[size] == pytest.approx(per_iteration_max[size].median())
    table = timeline.per_sample(samples, meta["hosts"])
    for _, g in table.groupby("nbytes"):
        spikes = g[g["spike"]].set_index("sample")
        assert list(spikes.index) == [7, 12]
        assert spikes.loc[7, "label"] == "straggler" and spikes.loc[7, "straggler"] == 2
        assert spikes.loc[12, "label"] == "system-wide"
    rc, out, _ = run_cli(capsys, "triage", tmp_path / "imp")  # skew only: nothing to drain
    assert rc == 0 and "straggler rank 2 (g2)" in out


@pytest.mark.slow
def test_report_has_a_fleet_section(tmp_path):
    from analysis.report_page import write_report

    pairs = pairs_run(tmp_path / "pairs", nnodes=6, slow_nodes={"n02"})
    coll = coll_run(tmp_path / "coll", per_node=1, split="all")
    index = write_report([pairs, coll], tmp_path / "report")
    page = index.read_text()
    assert "id='fleet'" in page and "drain (1): n02" in page
    assert (tmp_path / "report" / "fleet-map.png").exists()
    assert (tmp_path / "report" / "fleet-time-pairs.png").exists()
    alone = coll_run(tmp_path / "alone", nnodes=1, per_node=2, split="all")  # nothing to judge
    assert "id='fleet'" not in write_report([alone], tmp_path / "r2").read_text()


def test_find_launch_template_and_group_times():
    assert triage_find.launch_argv("mpirun -n {n} --host {hosts} --map-by node", ["a", "b"]) == [
        "mpirun", "-n", "2", "--host", "a,b", "--map-by", "node"]
    rows = [("mpi", "pingpong", "uint8", 8, 2, "group:2:1", 0, s, r, 1, t, -1)
            for s in range(5) for r, t in enumerate([1.0, 2.0, 3.0, 1.5])]
    times = triage_find.group_times(pd.DataFrame(rows, columns=SAMPLE_COLUMNS + ["peer"]), 2)
    assert list(times) == [2.0, 3.0]  # per group: the max over its ranks


@pytest.mark.parametrize("argv, message", [
    (["--find", "n[1-8]"], "--find needs --launch TEMPLATE and --out DIR"),
    (["--find", "n[1-8]", "--launch", "mpirun -n {n}", "--out", "x"], "must place {hosts}"),
    (["--find", "n[1-3]", "--launch", "m {hosts}", "--out", "x"], "at least 6 are needed"),
    (["--find", "n[1-8", "--launch", "m {hosts}", "--out", "x"], "malformed hostlist"),
    (["--find", "n[1-8]", "--launch", "m '{hosts}", "--out", "x"], "--launch: No closing quotation"),
    (["somedir", "--find", "n[1-8]"], "give it no RUN_DIR"),
    ([], "give RUN_DIRs to judge"),
])
def test_find_bad_input(tmp_path, capsys, argv, message):
    rc, _, err = run_cli(capsys, "triage",
                         *[a.replace("x", str(tmp_path / "x")) if a == "x" else a for a in argv])
    assert rc == 2 and message in err and err.count("\n") == 1, err


@pytest.mark.slow
def test_the_drain_list_is_a_ready_scontrol_line_applied_only_when_asked(tmp_path, capsys, monkeypatch):
    """triage prints one `scontrol update ... State=DRAIN Reason="<evidence>"` line per node to
    drain; --apply-drain runs it (here a stand-in scontrol on PATH records its argv)."""
    import os
    import stat

    runs = [pairs_run(tmp_path / "pairs", slow_nodes={"n03"})]
    log = tmp_path / "scontrol.log"
    fake = tmp_path / "bin" / "scontrol"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert cli(["triage", *map(str, runs)]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("slurm: "))
    assert line.startswith('slurm: scontrol update NodeName=n03 State=DRAIN Reason="commbench triage: ')
    assert not log.exists()  # printed, not applied
    assert cli(["triage", *map(str, runs), "--apply-drain"]) == 1
    assert log.read_text().startswith("update NodeName=n03 State=DRAIN Reason=commbench triage: ")
