"""commbench report: the page, its figures, escaping, overlays; and a real headless browser."""
import base64
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis.run_frames import summarize_samples, write_run_dir_from_frames
from bench.cli import main as cli
from bench.core.rundir import SAMPLE_COLUMNS, SCHEMA_CSV
from bench.core.run_writer import write_run_dir as write_summary_run_dir
from tests.conftest import needs_mpi, run_cli
from tests.runs import synthetic_meta, synthetic_samples

pytestmark = pytest.mark.slow  # a report draws its figures with matplotlib: seconds

SIZES = [4, 64, 1024, 16384, 262144]
EVIL = "<script>alert('x')</script>&"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def hockney(nbytes):
    """The synthetic truth: 2 µs + S / 5 GB/s below 4 KiB, 6 µs + S / 10 GB/s above."""
    return 2e-6 + nbytes / 5e9 if nbytes < 4096 else 6e-6 + nbytes / 10e9


def make_run(path, nranks=4, slow_rank=3, seed=0, scale=1.0, evil=False, backend="mpi",
             settings=None):
    """A synthetic run of allreduce (sized) and barrier (no size); one rank 20% slower. Its
    summary carries the flags bench.plausible gives (no-op on one rank); settings: meta.json's."""
    from bench import plausible
    from bench.ops import OPS

    rng = np.random.default_rng(seed)

    def time(op, nbytes, rnd, s, rank):
        t = hockney(nbytes) * scale * float(np.exp(rng.normal(0, 0.02)))
        return t * (1.2 if rank == slow_rank else 1.0)

    df = synthetic_samples([("allreduce", n) for n in SIZES] + [("barrier", 0)], time, rounds=2,
                           samples=15, nranks=nranks, backend=backend, calls=8)
    summary = summarize_samples(df, bus_factor=lambda op, n: OPS[op].bus_factor(n) or float("nan"),
                                count=lambda op, dtype, nbytes, n: nbytes // 4)
    meta = synthetic_meta(path, nranks, backend={"name": backend, "library": "Open MPI (synthetic)"},
                          hosts=["node-a"] * nranks, method={"sample": "synthetic"},
                          ops={op: OPS[op].facts() for op in ("allreduce", "barrier")},
                          env={"OMPI_MCA_btl": "self,vader"})
    if settings is not None:
        meta["settings"] = settings
    summary["flags"] = [plausible.flags(r, OPS[r["op"]], 8, meta) for r in summary.to_dict("records")]
    if evil:
        meta["hosts"] = [EVIL] * nranks
        meta["env"]["UCX_TLS"] = EVIL
        meta["ops"]["allreduce"]["s_means"] = EVIL
        meta["run_id"] = "run<b>1</b>"
    # bench.core.run_writer's writer: it keeps every summary column, flags included
    write_summary_run_dir(path, meta, df.to_dict("records"), summary.to_dict("records"))
    return path


def write_fits(path, backend="mpi", nranks=4):
    rows = []
    for seg, (lo, hi, a, b) in enumerate([(4, 1024, 2e-6, 1 / 5e9), (16384, 262144, 6e-6, 1 / 10e9)]):
        for param, value in (("alpha_s", a), ("beta_s_per_byte", b), ("rel_rms", 0.01)):
            rows.append(dict(backend=backend, op="allreduce", nranks=nranks, split="all",
                             model="hockney", segment=seg, nbytes_lo=lo, nbytes_hi=hi,
                             param=param, value=value, ci_low=float("nan"), ci_high=float("nan")))
    pd.DataFrame(rows).to_csv(path / "fits.csv", index=False)


def embedded_images(page):
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)]


# Rendering figures costs about a second per report on this machine: the tests share reports.
@pytest.fixture(scope="module")
def evil_report(tmp_path_factory):
    """One run with hostile metadata and a fits.csv, reported through the command line."""
    run = make_run(tmp_path_factory.mktemp("evil") / "run", evil=True)
    write_fits(run)
    assert cli(["report", str(run), "--no-fit"]) == 0
    return run / "report"


@pytest.fixture(scope="module")
def overlay_report(tmp_path_factory):
    """Two runs in one report: `a` with fits.csv, `b` without (fitted in memory if it can)."""
    base = tmp_path_factory.mktemp("overlay")
    a = make_run(base / "a", seed=1)
    write_fits(a)
    b = make_run(base / "b", seed=2, scale=1.3, backend="gloo")
    assert cli(["report", str(a), str(b), "--out", str(base / "both")]) == 0
    return base


@pytest.mark.slow
def test_report_page_and_figures(evil_report):
    pngs = sorted(p.name for p in evil_report.glob("*.png"))
    assert pngs == ["bandwidth-allreduce.png", "latency-allreduce.png", "latency-barrier.png",
                    "ranks-allreduce.png", "ranks-barrier.png", "residuals-allreduce.png"]
    page = (evil_report / "index.html").read_text()
    images = embedded_images(page)
    # every figure is embedded (the page is one self-contained file) and equals its PNG file
    assert len(images) == len(pngs)
    assert set(images) == {(evil_report / p).read_bytes() for p in pngs}
    assert all(img.startswith(PNG_MAGIC) for img in images)
    assert "src='http" not in page and "href='http" not in page
    # the slow rank is named; the fit table gives α (µs), β (ps/byte) and 1/β (GB/s)
    assert "slowest rank: 3 (1.2x the median over ranks" in page
    assert "<td>0</td><td>4 B – 1 KiB</td><td>2</td><td>200</td><td>5</td>" in page
    assert "<td>1</td><td>16 KiB – 256 KiB</td><td>6</td><td>100</td><td>10</td>" in page
    # units, S meaning and the bus factor are stated; the environment is shown
    for text in ("1 GB = 1e9 bytes", "2(n-1)/n", "none (no data)", "µs", "Open MPI (synthetic)",
                 "OMPI_MCA_btl"):
        assert text in page


@pytest.mark.slow
def test_summary_table_values(evil_report):
    page = (evil_report / "index.html").read_text()
    # 256 KiB: median over samples of max over ranks = 1.2 x (6 µs + 26.2 µs); algbw = S / that
    row = re.search(r"<tr><td>mpi n=4</td><td><span title='262144 B'>256 KiB</span></td>.*?</tr>", page)
    assert row
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0))
    median_us = float(cells[3])
    assert median_us == pytest.approx(1.2 * hockney(262144) * 1e6, rel=0.05)
    assert float(cells[7]) == pytest.approx(262144 / (median_us * 1e-6) / 1e9, rel=1e-3)  # algbw GB/s
    assert float(cells[8]) == pytest.approx(float(cells[7]) * 1.5, rel=1e-3)  # busbw, 2(n-1)/n


def test_metadata_is_escaped(evil_report):
    page = (evil_report / "index.html").read_text()
    assert "<script>alert" not in page and "<b>1</b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;" in page
    assert "run&lt;b&gt;1&lt;/b&gt;" in page
    assert page.count("<script>") == 1  # only the report's own image check


def test_slowest_rank_is_found(tmp_path):
    from analysis.figures import rank_spread
    from analysis.runsamples import load_samples

    samples = load_samples(make_run(tmp_path / "run", slow_rank=2))
    spread = rank_spread(samples, "allreduce", ("mpi", 4, "float32", "all"))
    assert list(spread.index) == [0, 1, 2, 3]
    assert spread.mean(axis=1).idxmax() == 2
    assert spread.loc[2].min() > 1.1 and spread.loc[0].max() < 1.05


@pytest.mark.slow
def test_several_runs_are_overlaid(overlay_report):
    out = overlay_report / "both"
    page = (out / "index.html").read_text()
    # one figure per kind and op with both runs in it; both runs in tables and environment
    assert len(embedded_images(page)) == len(list(out.glob("*.png")))
    assert (out / "latency-allreduce.png").exists()
    for label in ("a mpi n=4", "b gloo n=4"):  # summary rows: sizes + barrier
        cells = re.findall(rf"<td>{label}</td><td>(<span[^>]*>)?[\d.]+ (B|KiB|MiB|GiB)", page)
        assert len(cells) == len(SIZES) + 1
    assert "<h3>a —" in page and "<h3>b —" in page
    assert "a mpi n=4: slowest rank: 3" in page and "b gloo n=4: slowest rank: 3" in page
    assert "no rank stands out" not in page


@pytest.mark.slow
def test_fit_from_fits_csv_or_in_memory(overlay_report):
    page = (overlay_report / "both" / "index.html").read_text()
    assert str(overlay_report / "a" / "fits.csv") in page
    assert not (overlay_report / "b" / "fits.csv").exists()  # the report writes no run data
    pytest.importorskip("scipy")  # b has no fits.csv: the report fits it in memory (nnls)
    assert "fitted in memory by analysis.fit" in page
    fit_rows = re.findall(r"<tr><td>b gloo n=4</td><td>\d+</td>", page)
    assert fit_rows  # b has Hockney segments too


@pytest.mark.slow
def test_imported_run_without_fit(tmp_path, capsys):
    from pathlib import Path

    data = Path(__file__).parent / "data" / "osu_latency.txt"
    assert cli(["import", str(data), "--out", str(tmp_path / "osu")]) == 0
    rc, _, _ = run_cli(capsys, "report", tmp_path / "osu", "--no-fit")
    assert rc == 0
    out = tmp_path / "osu" / "report"
    page = (out / "index.html").read_text()
    assert "imported from osu" in page
    assert sorted(p.name for p in out.glob("*.png")) == ["bandwidth-pingpong.png", "latency-pingpong.png"]
    assert "No fitted model for this op" in page  # no residuals, no ranks (rank -1 only)


@pytest.mark.slow
def test_one_rank_report_has_no_empty_plots(tmp_path):
    """One rank: every collective is a no-op. No bandwidth figure (it would be empty or draw
    S / time as if data moved) and no per-rank spread, each with a sentence saying why; the
    latency figures stay; the tables show the flag and no bandwidth. settings.timer = cuda is
    stated as CUDA events."""
    run = make_run(tmp_path / "one", nranks=1, settings={"timer": "cuda"})
    assert cli(["report", str(run), "--no-fit"]) == 0
    out = run / "report"
    assert sorted(p.name for p in out.glob("*.png")) == ["latency-allreduce.png", "latency-barrier.png"]
    page = (out / "index.html").read_text()
    assert len(embedded_images(page)) == 2
    assert ("No bandwidth plot: every case ran on one rank, where collectives move no data "
            "(flag no-op).") in page
    assert page.count("No per-rank spread: every case ran on one rank") == 2  # allreduce, barrier
    # the table: flag in its own column, no algbw, busbw or % of ceiling
    row = re.search(r"<tr class='flagged'><td>mpi n=1</td>"
                    r"<td><span title='262144 B'>256 KiB</span></td>.*?</tr>", page)
    assert row
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0))
    assert cells[-1] == "no-op" and cells[7:10] == ["–", "–", "–"]
    assert float(cells[3]) > 0  # the latency is kept
    assert "CUDA events recorded around the k calls" in page and "Timing: cuda (settings.timer)" in page


def test_timer_default_is_host(evil_report):
    page = (evil_report / "index.html").read_text()
    assert "Timing: host (the default; meta.json has no settings.timer)" in page
    assert "CUDA events" not in page


@pytest.mark.slow
def test_flagged_rows_are_not_bandwidth_points(tmp_path):
    """A flagged row is left out of what the bandwidth figure plots and drawn hollow in the
    latency figure; a figure with no unflagged row is not drawn at all."""
    from analysis.figures import bandwidth_figure, bandwidth_rows, latency_figure
    from analysis.report_ops import no_bandwidth_sentence, series_of
    from analysis.report_runs import load_report_runs

    run = make_run(tmp_path / "two", nranks=2)
    summary = pd.read_csv(run / "summary.csv")
    flagged = {1024: "below-timer", 262144: "above-ceiling;below-timer"}
    summary["flags"] = [flagged.get(n, "") if op == "allreduce" else "" for op, n in
                        zip(summary["op"], summary["nbytes"])]
    summary.to_csv(run / "summary.csv", index=False)
    runs = load_report_runs([run], fit_missing=False)
    series = series_of(runs, "allreduce")
    for column in ("algbw_Bps", "busbw_Bps"):
        assert sorted(bandwidth_rows(series[0].rows, column)["nbytes"]) == [4, 64, 16384]
    fig = bandwidth_figure("allreduce", series)
    assert len(fig.axes) == 2
    for ax in fig.axes:
        drawn = {float(x) for line in ax.lines for x in line.get_xdata()}
        assert drawn == {4.0, 64.0, 16384.0}
    # latency: all sizes on the line, the flagged ones again as hollow (white-faced) markers
    ax = latency_figure("allreduce", series).axes[0]
    hollow = [line for line in ax.lines if line.get_markerfacecolor() == "white" and len(line.get_xdata())]
    assert [sorted(line.get_xdata()) for line in hollow] == [[1024.0, 262144.0]]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "hollow: flagged (below-timer, above-ceiling)" in legend
    # every row flagged: no figure, and the reason names the flags
    summary["flags"] = "below-timer"
    summary.to_csv(run / "summary.csv", index=False)
    series = series_of(load_report_runs([run], fit_missing=False), "allreduce")
    assert bandwidth_figure("allreduce", series) is None
    assert "every sample was shorter than 10 steps of the clock" in no_bandwidth_sentence(series)


def test_bad_input_exit_2(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "report", tmp_path / "missing")
    assert rc == 2 and "not a commbench run directory" in err and len(err.splitlines()) == 1
    empty = tmp_path / "empty"
    no_samples = pd.DataFrame(columns=SAMPLE_COLUMNS)
    write_run_dir_from_frames(empty, {"schema": SCHEMA_CSV}, no_samples, summarize_samples(no_samples))
    rc, _, err = run_cli(capsys, "report", empty)
    assert rc == 2 and "no results" in err


# ---------------------------------------------------------------- headless browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def images_loaded(page_path, tmp_path):
    """The page's own check after load, as chromium sees it: 'loaded/total' or None."""
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=10000",
            "--dump-dom", page_path.resolve().as_uri()]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r'<body[^>]*data-images="(\d+)/(\d+)"', proc.stdout)
    return (int(m.group(1)), int(m.group(2))) if m else None


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it)")
def test_browser_shows_the_figures(evil_report, tmp_path):
    n = len(list(evil_report.glob("*.png")))
    assert images_loaded(evil_report / "index.html", tmp_path) == (n, n)
    # the check can fail: a page whose image does not decode
    from analysis.report_assets import LOAD_CHECK

    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><img src='data:image/png;base64,iVBORw0KGgoAAAA'>"
                      f"{LOAD_CHECK}</body></html>")
    assert images_loaded(broken, tmp_path) == (0, 1)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it)")
@needs_mpi
def test_browser_on_a_real_local_run(tmp_path):
    """A short local run (the default backend and launcher; one op, small sizes, a short
    budget to keep the test quick), its report with the in-memory fit, in chromium."""
    out = tmp_path / "run"
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = [sys.executable, "-m", "bench.cli", "run", "-n", "2", "--ops", "allreduce",
           "--sizes", "4:256:4", "--budget", "0.05", "-q", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "report", str(out)],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n = len(list((out / "report").glob("*.png")))
    assert {"latency-allreduce.png", "bandwidth-allreduce.png", "ranks-allreduce.png"} <= {
        p.name for p in (out / "report").glob("*.png")}
    assert images_loaded(out / "report" / "index.html", tmp_path) == (n, n)


@pytest.mark.slow
def test_the_rank_heatmap_is_centred_at_one(tmp_path):
    """Ranks within a fraction of a percent: pale colours (the scale spans at least ±10%
    around 1.0, the same distance both ways) and a title that says no rank stands out, for
    sized ops and barrier alike; a 20% slower rank is named."""
    from analysis.figures import ranks_figure
    from analysis.report_ops import RANK_SPREAD_NOTICE, series_of
    from analysis.report_runs import load_report_runs

    for slow, title in ((None, "no rank stands out (all within 2%)"), (3, "slowest rank 3")):
        runs = load_report_runs([make_run(tmp_path / f"r{slow}", slow_rank=slow)], fit_missing=False)
        for op in ("allreduce", "barrier"):
            fig, _ = ranks_figure(op, series_of(runs, op), RANK_SPREAD_NOTICE)
            ax = fig.axes[0]
            norm = ax.images[0].norm
            assert title in ax.get_title(), ax.get_title()
            assert norm.vcenter == 1.0 and norm.vmax >= 1.1
            assert norm.vmax - 1.0 == pytest.approx(1.0 - norm.vmin)


def test_cells_and_environment_read_as_written_for_people():
    """No scientific notation in cells; the command without the launcher's own options;
    seconds and rates in meta.json with their units."""
    from analysis.html_parts import meta_value_text, number_cell
    from analysis.report_sections import environment_rows, typed_command

    assert number_cell(16760.3) == "16,760" and number_cell(0.0004224) == "0.0004224" and number_cell(2.0) == "2"
    assert number_cell(1.0e-9, 1e9) == "1" and number_cell(float("nan")) == "–"
    assert typed_command(["commbench", "run", "--out", "x", "--launch-index", "0"]) == \
        "commbench run --out x"
    assert meta_value_text(6e-8, "measured_resolution_s") == "60 ns"
    assert meta_value_text(7442678868.520845, "copy_Bps") == "7.44 GB/s"
    assert meta_value_text(7442678868.520845) == "7,443,000,000"
    rows = dict(environment_rows({"argv": ["commbench", "run", "--launch-index", "1"],
                                  "nranks": 2, "nnodes": 1, "hosts": ["vm", "vm"],
                                  "settings": {"nranks": None, "sizes": [4, 64]}}))
    assert rows["command"] == "commbench run" and rows["ranks"] == "2 on 1 node(s): vm (2)"
    assert rows["sizes"] == "4 B, 64 B"
