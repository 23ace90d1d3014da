"""commbench under a real Slurm (tests/slurm_cluster.py: slurmctld and four slurmd, one per
emulated node): srun with PMIx, mpirun inside salloc, the README's sbatch recipe, sweeps as
batch jobs, and drain lines that scontrol takes. Host map, --split, the link map and the job's
identity are checked in meta.json, in `commbench links` and in the report.

Needs root, the network-namespace tools and Debian's `slurmctld slurmd slurm-client
libpmix-dev` (.ci/run installs them); skipped with the reason otherwise. `pytest -m slurm`.
"""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from analysis.links import link_times
from analysis.runsamples import load_run
from bench.core.hostlist import compress, expand_hostlist
from tests.conftest import QUICK, ROOT, commbench_env, mpiexec, needs_mpi
from tests.slurm_cluster import SlurmCluster, SlurmStartError, start_errors, why_no_pmix, why_not

pytestmark = [
    pytest.mark.slurm,
    needs_mpi,
    pytest.mark.skipif(why_not() is not None, reason=str(why_not())),
]
needs_pmix = pytest.mark.skipif(why_no_pmix() is not None, reason=str(why_no_pmix()))

NODES = ["node0", "node1", "node2", "node3"]
COMMBENCH = [sys.executable, "-m", "bench.cli"]
SRUN = ["srun", "--mpi=pmix"]


@pytest.fixture(scope="module")
def slurm():
    cluster = SlurmCluster(len(NODES))
    try:
        cluster.__enter__()
    except SlurmStartError as exc:  # e.g. a host whose cgroups slurmd cannot use
        pytest.skip(f"the Slurm test cluster did not start: {start_errors(str(exc))}")
    try:
        yield cluster
    finally:
        cluster.close()


def env():
    return commbench_env()


def job_of(meta) -> dict:
    job = meta.get("job")
    assert isinstance(job, dict) and job["scheduler"] == "slurm", meta.get("job")
    return job


def blocks(nodelist: str, per_node: int) -> list:
    """The host map of srun's block distribution over a node list: each node's ranks together.
    Which nodes Slurm picks is its choice; the test checks the ranks went where it said."""
    return [node for node in expand_hostlist(nodelist) for _ in range(per_node)]


def check_report(slurm, run_dir, *expected):
    """`commbench report` of the run names the job; returns the page."""
    out = Path(run_dir) / "report"
    r = slurm.client([*COMMBENCH, "report", run_dir, "--out", out], env=env(), timeout=180)
    page = (out / "index.html").read_text()
    for text in expected:
        assert text in page, (text, r.stderr[-2000:])
    return page


@needs_pmix
@pytest.mark.timeout(300)
def test_srun_one_rank_per_node_maps_hosts_links_and_job(slurm, tmp_path):
    out = tmp_path / "pairs"
    r = slurm.client([*SRUN, "-N", "4", "-n", "4", *COMMBENCH, "run", "--ops", "pairs,allreduce",
                      "--sizes", "8,1K", "--out", out, *QUICK], env=env(), timeout=240)
    meta, samples, summary = load_run(out)
    assert meta["status"] == "complete" and (summary.wrong == 0).all()
    assert meta["hosts"] == NODES and meta["nnodes"] == 4
    job = job_of(meta)
    assert job["ranks_started_by"] == "srun" and job["step_id"] == "0"
    assert job["step_nodelist"] == compress(NODES) == "node[0-3]"
    assert job["step_tasks_per_node"] == "1(x4)" and job["num_nodes"] == "4"
    # the link map: every pair of the four nodes, all between nodes
    links = link_times(samples, meta["hosts"])
    pairs = {tuple(sorted((a, b))) for a, b in zip(links.host_a, links.host_b)}
    assert pairs == {(a, b) for i, a in enumerate(NODES) for b in NODES[i + 1:]}
    assert set(links["kind"]) == {"inter"}
    line = f"Slurm job {job['job_id']} step 0: node[0-3], tasks per node 1(x4)"
    shown = slurm.client([*COMMBENCH, "links", out], env=env())
    host_map = "# nodes: 4 ranks on 4 hosts × 1: node[0-3]"
    assert line in shown.stdout and host_map in shown.stdout, shown.stdout
    assert host_map in shown.stdout
    page = check_report(slurm, out, line, host_map, "Links and skew")
    assert page.count("link map, S = ") == 2  # a heatmap of the six links per size
    assert r.returncode == 0


@needs_pmix
@pytest.mark.timeout(300)
def test_srun_two_ranks_per_node_splits_by_node(slurm, tmp_path):
    out = tmp_path / "split"
    slurm.client([*SRUN, "-N", "2", "-n", "4", *COMMBENCH, "run", "--ops", "allreduce",
                  "--sizes", "8,1K", "--split", "all,intra,inter", "--out", out, *QUICK],
                 env=env(), timeout=240)
    meta, samples, summary = load_run(out)
    assert meta["status"] == "complete" and (summary.wrong == 0).all()
    job = job_of(meta)
    assert len(expand_hostlist(job["step_nodelist"])) == 2 and job["step_tasks_per_node"] == "2(x2)"
    assert meta["hosts"] == blocks(job["step_nodelist"], 2)
    # intra: one communicator per node (2 ranks each); inter: one rank of every node (2)
    sizes = dict(zip(summary["split"], summary["nranks"]))
    assert sizes == {"all": 4, "intra": 2, "inter": 2}
    assert set(samples[samples.split == "intra"]["rank"]) == {0, 1, 2, 3}  # all at once
    check_report(slurm, out, f"Slurm job {job['job_id']} step 0: {job['step_nodelist']}, tasks "
                             "per node 2(x2)")


@pytest.mark.timeout(300)
def test_mpirun_inside_salloc(slurm, tmp_path):
    """Open MPI's mpirun finds the allocation itself (its slurm components start one daemon
    per node with srun); the ranks are mpirun's, so the job's identity is the allocation's."""
    out = tmp_path / "salloc"
    slurm.client(["salloc", "-N", "4", mpiexec(), "-n", "4", "--map-by", "node", *COMMBENCH,
                  "run", "--ops", "allreduce,pingpong", "--sizes", "8,1K", "--out", out, *QUICK],
                 env=env(), timeout=240)
    meta, _, summary = load_run(out)
    assert meta["status"] == "complete" and (summary.wrong == 0).all()
    assert meta["hosts"] == NODES
    job = job_of(meta)
    assert job["ranks_started_by"] == "openmpi" and job["nodelist"] == "node[0-3]"
    assert "step_id" not in job  # the step is mpirun's daemons', not the ranks'
    assert job["tasks_per_node"] == "1(x4)"



@needs_pmix
@pytest.mark.timeout(300)
def test_mpiexec_srun_for_local_runs_inside_salloc(slurm, tmp_path):
    """`MPIEXEC="srun --mpi=pmix" commbench run -n 4` (README, Installing): commbench's own
    launcher starts the ranks with srun, here two per node of a two-node allocation."""
    out = tmp_path / "mpiexec-srun"
    slurm.client(["salloc", "-N", "2", "-n", "4", *COMMBENCH, "run", "-n", "4", "--ops",
                  "allreduce", "--sizes", "8,1K", "--out", out, *QUICK],
                 env={**env(), "MPIEXEC": "srun --mpi=pmix"}, timeout=240)
    meta, _, summary = load_run(out)
    assert meta["status"] == "complete" and (summary.wrong == 0).all()
    job = job_of(meta)
    assert job["ranks_started_by"] == "srun" and job["step_tasks_per_node"] == "2(x2)"
    assert meta["hosts"] == blocks(job["step_nodelist"], 2)

SBATCH_RECIPE = ROOT / "results" / "commbench.sbatch"


def test_readme_shows_the_sbatch_recipe_the_test_submits():
    recipe = textwrap.indent(SBATCH_RECIPE.read_text(), "    ")  # a code block in bench/README.md
    assert recipe in (ROOT / "bench" / "README.md").read_text()


@needs_pmix
@pytest.mark.timeout(400)
def test_sbatch_of_the_readme_recipe(slurm, tmp_path):
    """The recipe as it stands, on three nodes of two tasks each (sbatch's options override its
    #SBATCH lines), with tiny sizes and budgets given as the script's arguments. `~/commbench/
    .venv` is this test's Python environment."""
    home = tmp_path / "home"
    (home / "commbench").mkdir(parents=True)
    (home / "commbench" / ".venv").symlink_to(Path(sys.prefix))
    r = slurm.client(["sbatch", "--wait", "--parsable", "-N", "3", "--ntasks-per-node=2",
                      "--time=00:10:00", "--output=slurm-%j.out", SBATCH_RECIPE, *QUICK,
                      "--sizes", "8,1K"], env={**env(), "HOME": str(home)}, cwd=tmp_path,
                     timeout=360, check=False)
    job_id = r.stdout.strip().split(";")[0]
    log = next(tmp_path.glob("slurm-*.out"), None)
    log_text = log.read_text() if log else "(no job output)"
    assert r.returncode == 0 and job_id.isdigit(), r.stderr + log_text
    pairs, split = tmp_path / "results" / f"{job_id}-pairs", tmp_path / "results" / f"{job_id}-split"
    for run_dir, per_node, step in ((pairs, 1, "0"), (split, 2, "1")):
        meta, _, summary = load_run(run_dir)
        assert meta["status"] == "complete" and (summary.wrong == 0).all(), log_text
        job = job_of(meta)
        assert (job["job_id"], job["step_id"], job["step_tasks_per_node"]) == (
            job_id, step, f"{per_node}(x3)")
        assert len(expand_hostlist(job["nodelist"])) == 3 and job["step_nodelist"] == job["nodelist"]
        assert meta["hosts"] == blocks(job["nodelist"], per_node)
    assert len(list((pairs / "png").glob("*.png"))) == 2, log_text  # a link map per size
    page = (pairs / "report" / "index.html").read_text()
    assert f"Slurm job {job_id} step 1: {job['nodelist']}, tasks per node 2(x3)" in page


@needs_pmix
@pytest.mark.timeout(400)
def test_sweep_as_one_batch_job(slurm, tmp_path):
    """`commbench sweep --slurm`: one job, a step per rank count, the runs in DIR/n<count>;
    with --ranks-per-node the counts are spread over count/R whole nodes."""
    out = tmp_path / "sweep"
    r = slurm.client([*COMMBENCH, "sweep", "--slurm", "--sbatch", "--time 10", "--nranks", "2,4",
                      "--ranks-per-node", "2", "--ops", "allreduce", "--sizes", "8,1K", *QUICK,
                      "--out", out], env=env(), timeout=360, check=False)
    assert r.returncode == 0, r.stderr[-3000:] + slurm.logs()
    sweep = json.loads((out / "sweep.json").read_text())
    job_id = sweep["slurm"]["job_id"]
    assert sweep["nranks"] == [2, 4] and "--slurm" not in sweep["run_options"]
    for step, p in enumerate((2, 4)):
        meta, _, summary = load_run(out / f"n{p}")
        assert meta["status"] == "complete" and meta["nranks"] == p
        assert (summary.wrong == 0).all() and set(summary.nranks) == {p}
        job = job_of(meta)
        assert (job["job_id"], job["step_id"]) == (job_id, str(step))
        # two ranks per node: 2 ranks on one node, 4 on two
        assert len(expand_hostlist(job["step_nodelist"])) == p // 2
        assert meta["hosts"] == blocks(job["step_nodelist"], 2)
    assert (out / f"slurm-{job_id}.out").exists()


@pytest.mark.timeout(120)
def test_pmi2_singletons_are_refused_in_one_line(slurm, tmp_path):
    """This MPI (Open MPI 5) takes its ranks from PMIx only: under --mpi=pmi2 every rank starts
    alone as rank 0 of 1. commbench says so instead of running two one-rank jobs."""
    out = tmp_path / "pmi2"
    r = slurm.client(["srun", "--mpi=pmi2", "-N", "2", "-n", "2", *COMMBENCH, "run", "--ops",
                      "allreduce", "--sizes", "8", "--out", out, *QUICK], env=env(), check=False)
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("commbench: error:")]
    assert errors == ["commbench: error: the launcher (hydra) started 2 ranks, but mpi sees 1: "
                      "the MPI library does not speak the launcher's protocol (Open MPI 5 needs "
                      "PMIx: srun --mpi=pmix, not pmi2)"], r.stderr
    assert not (out / "samples.csv").exists()


def test_drain_lines_drain_nodes_only_when_applied(slurm):
    """Runs last (it drains nodes and resumes them): a printed line changes nothing; --apply
    drains; the printed line pasted into a shell drains too; sinfo says `drained`."""
    drain_cmd = [sys.executable, "-m", "analysis.slurm"]
    reason = "pairs: node3 2.0x the median node at 1 KiB (test)"
    slurm.wait_idle()  # the jobs of earlier tests have left their nodes
    try:
        r = slurm.client([*drain_cmd, "node3", "--reason", reason], env=env())
        assert r.stdout.strip() == f'scontrol update NodeName=node3 State=DRAIN Reason="{reason}"'
        assert slurm.node_state("node3") == "idle"
        slurm.client([*drain_cmd, "node3", "--reason", reason, "--apply"], env=env())
        assert slurm.node_state("node3") == "drained"
        reasons = slurm.client(["sinfo", "-R", "-h", "-o", "%n|%E"]).stdout
        assert f"node3|{reason}" in reasons.splitlines()
        line = slurm.client([*drain_cmd, "node[1-2]", "--reason", "second"], env=env()).stdout
        slurm.client(["sh", "-c", line])  # the line as printed, in a shell
        assert [slurm.node_state(n) for n in NODES] == ["idle", "drained", "drained", "drained"]
        r = slurm.client([*drain_cmd, "node9", "--reason", "x", "--apply"], env=env(),
                         check=False)
        assert r.returncode == 2 and r.stderr.startswith("commbench: error: scontrol did not "
                                                         "drain node9:"), r.stderr
    finally:
        slurm.client(["scontrol", "update", "NodeName=node[1-3]", "State=RESUME"], check=False)
