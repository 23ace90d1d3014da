"""Schema 2's raw samples in blocks (bench.core.samples, analysis.runsamples.RunSamples): what
rank 0 appends reads back exactly, schema 1's samples.csv reads the same as before through
either of its readers, the derived views equal what the old row-wise code computed, and a
damaged samples.bin is one line, never a traceback."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis import csv_checks
from analysis import runsamples as ars
from analysis.run_frames import sample_times, with_sample_extras
from analysis.runsamples import load_run, load_samples
from analysis.runsamples import FrameSamples, RunSamples
from bench.cli import main as cli
from bench.core import run_writer, rundir
from bench.core.errors import RunDirError
from bench.core.samples import Block, block_of, encode, read_blocks

CASE = ("mpi", "allreduce", "float32", 64, 4, "all")


def written_run(path, ops=("allreduce", "broadcast"), nranks=4, samples=6, rounds=2, seed=0,
                pairs=True):
    """A schema-2 run as rank 0 writes it: a block per case and round, in shuffled order, an
    idle rank missing from broadcast's blocks, pairs blocks (one per pairing) when asked."""
    rng = np.random.default_rng(seed)
    meta = {**rundir.new_meta(path.name, ["test"], "complete"), "nranks": nranks, "nnodes": 2,
            "hosts": [f"h{r // 2}" for r in range(nranks)]}
    writer = run_writer.RunWriter(path, meta)
    rows = []
    for rnd in range(rounds):
        for op in ops:
            for nbytes in (8, 4096):
                ranks = list(range(nranks - 1 if op == "broadcast" else nranks))
                times = rng.lognormal(-12, 0.3, (len(ranks), samples))
                writer.append_block(block_of(("mpi", op, "float32", nbytes, nranks, "all"), rnd,
                                             ranks, [-1] * len(ranks), times, 3))
                rows += [dict(zip(rundir.CASE, ("mpi", op, "float32", nbytes, nranks, "all")),
                              round=rnd, sample=j, rank=r, calls=3, time_s=times[i, j], peer=-1)
                         for i, r in enumerate(ranks) for j in range(samples)]
        if pairs:
            for pairing in ([(0, 1), (2, 3)], [(0, 2), (1, 3)]):
                ranks = [r for pair in pairing for r in pair]
                peers = [p for a, b in pairing for p in (b, a)]
                times = rng.lognormal(-11, 0.2, (4, samples))
                writer.append_block(block_of(("mpi", "pairs", "float32", 1024, nranks, "all"), rnd,
                                             ranks, peers, times, 1))
                rows += [dict(zip(rundir.CASE, ("mpi", "pairs", "float32", 1024, nranks, "all")),
                              round=rnd, sample=j, rank=r, calls=1, time_s=times[i, j], peer=p)
                         for i, (r, p) in enumerate(zip(ranks, peers)) for j in range(samples)]
    from analysis.run_frames import summarize_samples

    rows = pd.DataFrame(rows)
    writer.write_summary(summarize_samples(rows).to_dict("records"), op_order=())
    writer.finish("complete")
    return path, rows


def as_csv_run(src, dest, rows: pd.DataFrame):
    """The same run in schema 1's form."""
    meta = json.loads((src / "meta.json").read_text())
    dest.mkdir()
    (dest / "meta.json").write_text(json.dumps({**meta, "schema": rundir.SCHEMA_CSV}))
    (dest / "samples.csv").write_text(rundir.csv_text(rundir.WRITTEN_SAMPLE_COLUMNS,
                                                      rows.to_dict("records")))
    (dest / "summary.csv").write_text((src / "summary.csv").read_text())
    return dest


def sorted_rows(df):
    cols = rundir.WRITTEN_SAMPLE_COLUMNS
    return df[cols].astype({"time_s": float}).sort_values(cols).reset_index(drop=True)


def test_blocks_round_trip_every_column(tmp_path):
    run, rows = written_run(tmp_path / "run")
    back = load_samples(run)
    assert len(back) == len(rows)
    pd.testing.assert_frame_equal(sorted_rows(back), sorted_rows(rows), check_dtype=False)
    assert (back["time_s"].to_numpy() > 0).all()  # floats exactly: compared above, not rounded


def test_block_encoding_is_exact_and_views_the_file():
    block = block_of(CASE, 7, [3, 0, 2], [-1, -1, -1], [[1e-6, 2e-6], [3e-6], [4e-6, 5e-6]], 11)
    data = encode(block) * 2
    (off0, a), (off1, b) = list(read_blocks(data))
    assert off0 == 0 and off1 == len(data) // 2
    assert a.case == CASE and a.round == 7 and a.rank.tolist() == [3, 0, 2]
    assert a.calls.tolist() == [11, 11] and a.sample.tolist() == [0, 1]
    assert np.isnan(a.times[1, 1]) and a.times[2, 1] == 5e-6 and a.count == 5
    assert list(read_blocks(data[:-3])) and len(list(read_blocks(data[:-3]))) == 1  # torn: dropped


@pytest.mark.slow
def test_schema_1_and_2_give_the_same_views(tmp_path):
    run, rows = written_run(tmp_path / "run")
    old = as_csv_run(run, tmp_path / "old", rows)
    new_t = RunSamples(run, {"nranks": 4}).times()
    old_t = RunSamples(old, {"nranks": 4}).times()
    key = rundir.CASE + ["round", "sample"]
    a = new_t.sort_values(key).reset_index(drop=True)
    b = old_t.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    # the per-sample max equals the row-wise computation analysis used before
    rowwise = sample_times(load_samples(old)).sort_values(key).reset_index(drop=True)
    assert np.array_equal(a["time_s"].to_numpy(), rowwise["time_s"].to_numpy())
    # the last rank of each sample is the rank whose time is the max
    full = load_samples(run)
    for r in a.sample(10, random_state=0).itertuples():
        cell = full[(full.op == r.op) & (full.nbytes == r.nbytes) & (full["round"] == r.round)
                    & (full["sample"] == r.sample)]
        assert cell.loc[cell.time_s.idxmax(), "rank"] == r.last_rank
        assert cell.time_s.min() == r.min_s
    def in_order(frame):
        return frame.sort_values(["rank", "nbytes"]).reset_index(drop=True)

    for op in ("allreduce", "broadcast"):
        key4 = ("mpi", 4, "float32", "all")
        pd.testing.assert_frame_equal(in_order(RunSamples(run).rank_medians(op, key4)),
                                      in_order(FrameSamples(rows).rank_medians(op, key4)))


@pytest.mark.slow
def test_verbs_read_both_forms_alike(tmp_path, capsys):
    run, rows = written_run(tmp_path / "run", pairs=False)
    old = as_csv_run(run, tmp_path / "old", rows)
    for d in (run, old):
        assert cli(["fit", str(d), "--bootstrap", "0"]) == 0
    fits = [pd.read_csv(d / "fits.csv") for d in (run, old)]
    pd.testing.assert_frame_equal(fits[0], fits[1])
    assert cli(["compare", str(old), str(run)]) == 0  # the same samples: no difference


@pytest.mark.slow
def test_the_fast_and_the_checked_csv_readers_agree(tmp_path):
    run, rows = written_run(tmp_path / "run")
    old = as_csv_run(run, tmp_path / "old", rows)
    fast = list(ars._fast_csv_blocks(old / "samples.csv", {"nranks": 4}))
    checked = [b for df in csv_checks.read_table_chunks(old / "samples.csv", csv_checks.SAMPLE_SPEC,
                                                        csv_checks.SAMPLE_REQUIRED, chunk_bytes=4096)
               for b in ars.blocks_of_frame(with_sample_extras(df))]
    frame = lambda bs: sorted_rows(ars.frame_of_blocks(iter(bs)))  # noqa: E731
    pd.testing.assert_frame_equal(frame(fast), frame(checked), check_dtype=False)
    pd.testing.assert_frame_equal(frame(fast), sorted_rows(rows), check_dtype=False)


def test_chunked_csv_errors_name_the_files_own_line(tmp_path):
    run, rows = written_run(tmp_path / "run", pairs=False)
    old = as_csv_run(run, tmp_path / "old", rows)
    lines = (old / "samples.csv").read_text().splitlines()
    lines[150] = lines[150].rsplit(",", 2)[0] + ",inf,-1"  # line 151 of the file
    (old / "samples.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(RunDirError, match="line 151: time_s inf"):
        RunSamples(old, {}).times()
    with pytest.raises(RunDirError, match="line 151: time_s inf"):  # in a later chunk too
        list(csv_checks.read_table_chunks(old / "samples.csv", csv_checks.SAMPLE_SPEC,
                                          csv_checks.SAMPLE_REQUIRED, chunk_bytes=2000))


def damage(kind):
    def apply(path):
        data = bytearray((path / "samples.bin").read_bytes())
        second = data.find(b"CBSBLOCK", 8)
        if kind == "magic":
            data[second:second + 8] = b"XXXXXXXX"
        elif kind == "header":
            data[second + 16:second + 24] = b"{{{{{{{{"
        elif kind == "huge header":
            data[second + 8:second + 16] = (1 << 40).to_bytes(8, "little")
        elif kind in ("nan", "negative", "rank"):
            blocks = list(read_blocks(bytes(data)))
            off, b = blocks[1]
            times = b.times.copy()
            rank = b.rank.copy()
            if kind == "nan":
                times[0, 0] = np.inf
            elif kind == "negative":
                times[1, 1] = -1e-6
            else:
                rank[0] = 99
            new = encode(Block(b.case, b.round, rank, b.peer, b.sample, b.calls, times))
            end = blocks[2][0]
            data[off:end] = new
        (path / "samples.bin").write_bytes(bytes(data))
    return apply


@pytest.mark.parametrize("kind, words", [
    ("magic", ["samples.bin", "block 2", "not the start of a block"]),
    ("header", ["samples.bin", "block 2", "unreadable block header"]),
    ("huge header", ["samples.bin", "block 2", "header of"]),
    ("nan", ["samples.bin", "block 2", "time_s inf"]),
    ("negative", ["samples.bin", "block 2", "time_s -1e-06"]),
    ("rank", ["samples.bin", "block 2", "rank 99", "nranks"]),
])
@pytest.mark.parametrize("verb", ["fit", "links", "compare", "report"])
@pytest.mark.slow
def test_a_damaged_samples_bin_is_one_line(tmp_path, capsys, kind, words, verb):
    run, _ = written_run(tmp_path / "run", pairs=False)
    damage(kind)(run)
    argv = {"fit": ["fit", str(run), "--bootstrap", "0"], "links": ["links", str(run)],
            "compare": ["compare", str(run), str(run)],
            "report": ["report", str(run), "--no-fit", "--out", str(tmp_path / "r")]}[verb]
    rc = cli(argv)
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err


def test_an_empty_samples_bin_is_a_run_without_samples(tmp_path):
    writer = run_writer.RunWriter(tmp_path / "run", rundir.new_meta("r", []))
    assert (tmp_path / "run" / "samples.bin").stat().st_size == 0
    assert RunSamples(tmp_path / "run").empty and load_run(tmp_path / "run")[1].empty
    writer.finish("complete")


def fleet_run(path, nranks=1024, per_host=8, samples=12, slow_rank=77):
    """A run of many ranks on many hosts: allreduce at two sizes, one rank last in most
    samples."""
    rng = np.random.default_rng(5)
    hosts = [f"node{r // per_host:04d}" for r in range(nranks)]
    meta = {**rundir.new_meta(path.name, ["test"], "complete"), "nranks": nranks,
            "nnodes": nranks // per_host, "hosts": hosts}
    writer = run_writer.RunWriter(path, meta)
    summary = []
    for nbytes in (8, 65536):
        t = rng.lognormal(-12, 0.05, (nranks, samples))
        t[slow_rank] *= 1.5
        writer.append_block(block_of(("mpi", "allreduce", "float32", nbytes, nranks, "all"), 0,
                                     range(nranks), [-1] * nranks, t, 1))
        from bench.core.stats import summarize_case

        summary.append({**dict(zip(rundir.CASE, ("mpi", "allreduce", "float32", nbytes, nranks, "all"))),
                        **summarize_case(list(t.max(axis=0)), nbytes, 2.0, 1.0), "wrong": 0, "rounds": 1})
    writer.write_summary(summary, op_order=())
    writer.finish("complete")
    return path


@pytest.mark.slow
def test_output_at_a_thousand_ranks_reads_at_a_glance(tmp_path, capsys, monkeypatch):
    run = fleet_run(tmp_path / "fleet")
    assert cli(["links", str(run)]) == 0
    out = capsys.readouterr().out
    assert "# nodes: 1024 ranks on 128 hosts × 8: node[0000-0127]" in out
    assert "rank 77 (node0009) last in 100% of 12 samples" in out
    assert max(map(len, out.splitlines())) <= 200
    assert cli(["report", str(run), "--no-fit", "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert "slowest rank: 77 (" in page
    assert "1024 ranks on 128 hosts × 8" in page
    assert "id='fleet'" in page and "Left out" not in page
    from analysis import report_sections

    monkeypatch.setattr(report_sections, "FLEET_MAX_SAMPLES", 10_000)  # a fleet too large to read whole
    assert cli(["report", str(run), "--no-fit", "--out", str(tmp_path / "report2")]) == 0
    page = (tmp_path / "report2" / "index.html").read_text()
    assert "Left out: these runs hold 24,576 samples" in page and "commbench triage" in page
