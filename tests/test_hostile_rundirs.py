"""Hostile and damaged run directories: every analysis verb (report, fit, compare, links,
predict), through the real command line in-process, ends with exit status 2 and one line on
stderr that names the file and the problem (never a traceback, never a NaN or infinite
result); read-only runs can be read but not written into; file names built from a run's
contents stay inside the directory the user named; Markdown output escapes what it quotes."""
from __future__ import annotations

import builtins
import errno
import io
import json
import os
import re
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import compare_output, output_formats
from bench.cli import main as cli
from bench.core.rundir import SAMPLE_COLUMNS
from bench.ops.pairs import pairing_rounds
from tests.conftest import run_cli
from tests.runs import SMALL_SIZES, small_samples, write_small_run

pytestmark = pytest.mark.timeout(60)

VERBS = ("report", "fit", "compare", "links", "predict")
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """A valid run, the same run with its fits.csv (from `commbench fit`), and a baseline."""
    base = tmp_path_factory.mktemp("templates")
    run = write_small_run(base / "run")
    fitted = base / "fitted"
    shutil.copytree(run, fitted)
    assert cli(["fit", str(fitted), "--bootstrap", "0"]) == 0
    baseline = write_small_run(base / "baseline", small_samples(seed=1))
    return {"run": run, "fitted": fitted, "baseline": baseline}


def verb_argv(verb, run, baseline, out):
    return {
        "report": ["report", run, "--no-fit", "--out", out / "report"],
        "fit": ["fit", run, "--bootstrap", "0"],
        "compare": ["compare", baseline, run],
        "links": ["links", run],
        "predict": ["predict", "--fits", run, "--op", "allreduce", "--nranks", "2", "--nbytes", "64"],
    }[verb]


def assert_one_line_error(rc, out, err, *needles):
    assert rc == 2, (rc, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("commbench: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


NO_RESULT = re.compile(r"\bnan\b|\binf\b", re.IGNORECASE)


def assert_works(rc, out, err):
    assert rc in (0, 1), (rc, out, err)  # compare: 1 = slower
    assert "Traceback" not in err and "error" not in err
    assert not NO_RESULT.search(out.replace("information", "")), out


# ---------------------------------------------------------------- damage
def edit_lines(name, fn):
    def damage(run):
        path = run / name
        lines = path.read_text().split("\n")
        path.write_text("\n".join(fn(lines)))
    return damage


def set_field(name, column, value, line=5):
    """Field `column` of line `line` (1 = header) of a CSV file set to value (every data line
    when line is None)."""
    def fn(lines):
        i = lines[0].split(",").index(column)
        out = list(lines)
        for k in (range(1, len(lines)) if line is None else [line - 1]):
            if out[k]:
                parts = out[k].split(",")
                parts[i] = value
                out[k] = ",".join(parts)
        return out
    return edit_lines(name, fn)


def drop_column(name, column):
    def fn(lines):
        i = lines[0].split(",").index(column)
        return [",".join(p for k, p in enumerate(line.split(",")) if k != i) if line else line
                for line in lines]
    return edit_lines(name, fn)


def write(name, data: bytes):
    return lambda run: (run / name).write_bytes(data)


def replace_by_dir(name):
    def damage(run):
        (run / name).unlink(missing_ok=True)
        (run / name).mkdir()
    return damage


def replace_by_fifo(name):
    def damage(run):
        (run / name).unlink()
        os.mkfifo(run / name)
    return damage


def file_instead_of_dir(run):
    shutil.rmtree(run)
    run.write_text("not a run directory\n")


def add_fits(edit=None):
    """The run's fits.csv from the fitted template, edited: a function of its lines."""
    def damage(run, fitted):
        text = (fitted / "fits.csv").read_text()
        (run / "fits.csv").write_text("\n".join(edit(text.split("\n"))) if edit else text)
    damage.needs_fits = True
    return damage


def fits_value(param, value):
    def fn(lines):
        head = lines[0].split(",")
        out = list(lines)
        for k, line in enumerate(lines[1:], 1):
            parts = line.split(",")
            if len(parts) == len(head) and parts[head.index("param")] == param:
                parts[head.index("value")] = value
                out[k] = ",".join(parts)
                break
        return out
    return fn


ALL = set(VERBS)
SAMPLE_READERS = ALL          # predict reads samples when it fits a run without fits.csv
SUMMARY_READERS = {"report"}  # the others do not read summary.csv
FITS_READERS = {"report", "predict"}

# name: (damage, verbs that must fail, what the one line must name)
CASES = {
    "a file where the run directory should be": (file_instead_of_dir, ALL, ["run"]),
    "meta.json is []": (write("meta.json", b"[]"), ALL, ["meta.json", "expected a JSON object"]),
    "meta.json is null": (write("meta.json", b"null"), ALL, ["meta.json", "expected a JSON object"]),
    "meta.json not UTF-8": (write("meta.json", b'{"schema": 1, "run_id": "\xe9"}'), ALL,
                            ["meta.json", "not UTF-8"]),
    "meta.json a directory": (replace_by_dir("meta.json"), ALL, ["meta.json", "directory"]),
    "meta.json a FIFO": (replace_by_fifo("meta.json"), ALL, ["meta.json", "not a regular file"]),
    "meta.json missing": (lambda run: (run / "meta.json").unlink(), ALL, ["run", "meta.json"]),
    "meta.json bad JSON": (write("meta.json", b'{"schema": 1,'), ALL, ["meta.json", "JSON"]),
    "meta.json nested too deeply": (write("meta.json", b"[" * 100000 + b"]" * 100000), ALL,
                                    ["meta.json", "nested"]),
    "meta.json hosts not a list": (write("meta.json", b'{"schema": 1, "nranks": 2, "hosts": "ab"}'),
                                   ALL, ["meta.json", "hosts"]),
    "meta.json nranks a string": (write("meta.json", b'{"schema": 1, "nranks": "two"}'), ALL,
                                  ["meta.json", "nranks"]),
    "meta.json ops a list": (write("meta.json", b'{"schema": 1, "ops": ["allreduce"]}'), ALL,
                             ["meta.json", "ops"]),
    "meta.json launches a number": (write("meta.json", b'{"schema": 1, "launches": 3}'), ALL,
                                    ["meta.json", "launches"]),
    "meta.json malformed contention": (
        write("meta.json", b'{"schema": 1, "contention": {"hosts": {"a": {"other_share": "x"}}}}'),
        ALL, ["meta.json", "contention"]),
    "meta.json malformed noise": (
        write("meta.json", b'{"schema": 1, "noise": {"timer": {"measured_resolution_s": 1e-8}, '
                           b'"jitter_per_rank": []}}'),
        ALL, ["meta.json", "noise", "jitter_per_rank"]),
    "meta.json run_id with an escape": (write("meta.json", b'{"schema": 1, "run_id": "a\\u001b[2Jb"}'),
                                        ALL, ["meta.json", "run_id", "control character"]),
    "samples.csv without time_s": (drop_column("samples.csv", "time_s"), SAMPLE_READERS,
                                   ["samples.csv", "no time_s column"]),
    "samples.csv without rank": (drop_column("samples.csv", "rank"), SAMPLE_READERS,
                                 ["samples.csv", "no rank column"]),
    "samples.csv torn in the middle": (
        edit_lines("samples.csv", lambda L: L[:5] + [L[5][:17] + L[6]] + L[7:]), SAMPLE_READERS,
        ["samples.csv", "line 6", "torn"]),
    "samples.csv blank line": (edit_lines("samples.csv", lambda L: L[:5] + [""] + L[5:]),
                               SAMPLE_READERS, ["samples.csv", "line 6", "blank"]),
    "samples.csv NaN time": (set_field("samples.csv", "time_s", "nan"), SAMPLE_READERS,
                             ["samples.csv", "line 5", "time_s"]),
    "samples.csv inf time": (set_field("samples.csv", "time_s", "inf"), SAMPLE_READERS,
                             ["samples.csv", "line 5", "time_s inf"]),
    "samples.csv all times negative": (set_field("samples.csv", "time_s", "-1e-06", line=None),
                                       SAMPLE_READERS, ["samples.csv", "line 2", "time_s -1e-06"]),
    "samples.csv zero time": (set_field("samples.csv", "time_s", "0"), SAMPLE_READERS,
                              ["samples.csv", "line 5", "time_s 0", "> 0"]),
    "samples.csv size not a number": (set_field("samples.csv", "nbytes", "abc"), SAMPLE_READERS,
                                      ["samples.csv", "line 5", "nbytes 'abc'"]),
    "samples.csv fractional rank": (set_field("samples.csv", "rank", "1.5"), SAMPLE_READERS,
                                    ["samples.csv", "line 5", "rank 1.5", "integer"]),
    "samples.csv rank beyond the run": (set_field("samples.csv", "rank", "99"), SAMPLE_READERS,
                                        ["samples.csv", "rank 99", "nranks"]),
    "samples.csv huge rank": (set_field("samples.csv", "peer", "99999999999999999999"),
                              SAMPLE_READERS, ["samples.csv", "line 5", "peer"]),
    "samples.csv empty op": (set_field("samples.csv", "op", ""), SAMPLE_READERS,
                             ["samples.csv", "line 5", "no op"]),
    "samples.csv escape in an op name": (set_field("samples.csv", "op", "all\x1b[31mreduce"),
                                         SAMPLE_READERS, ["samples.csv", "control character"]),
    "samples.csv column twice": (edit_lines("samples.csv", lambda L: [L[0].replace("calls", "rank")] + L[1:]),
                                 SAMPLE_READERS, ["samples.csv", "'rank' twice"]),
    "samples.csv not UTF-8": (lambda run: (run / "samples.csv").write_bytes(
                                  (run / "samples.csv").read_bytes().replace(b"float32", b"float\xff", 1)),
                              SAMPLE_READERS, ["samples.csv", "not UTF-8", "line 2"]),
    "samples.csv NUL byte": (lambda run: (run / "samples.csv").write_bytes(
                                 (run / "samples.csv").read_bytes().replace(b"float32", b"float\x00", 3)),
                             SAMPLE_READERS, ["samples.csv", "NUL"]),
    "samples.csv a directory": (replace_by_dir("samples.csv"), SAMPLE_READERS,
                                ["samples.csv", "directory"]),
    "samples.csv a FIFO": (replace_by_fifo("samples.csv"), SAMPLE_READERS,
                           ["samples.csv", "not a regular file"]),
    "summary.csv empty": (write("summary.csv", b""), SUMMARY_READERS, ["summary.csv", "no results"]),
    "summary.csv without median_s": (drop_column("summary.csv", "median_s"), SUMMARY_READERS,
                                     ["summary.csv", "no median_s column"]),
    "summary.csv infinite median": (set_field("summary.csv", "median_s", "inf", line=2),
                                    SUMMARY_READERS, ["summary.csv", "line 2", "median_s inf"]),
    "summary.csv torn": (edit_lines("summary.csv", lambda L: L[:2] + [L[2][:10]] + L[3:]),
                         SUMMARY_READERS, ["summary.csv", "line 3", "torn"]),
    "summary.csv bad mode medians": (set_field("summary.csv", "mode_medians_s", "1e-6;x", line=2),
                                     SUMMARY_READERS, ["summary.csv", "line 2", "mode_medians_s"]),
    "fits.csv with NaN alpha": (add_fits(fits_value("alpha_s", "nan")), FITS_READERS,
                                ["fits.csv", "line 2", "value 'nan'"]),
    "fits.csv with an empty beta": (add_fits(fits_value("beta_s_per_byte", "")), FITS_READERS,
                                    ["fits.csv", "line 3", "beta_s_per_byte"]),
    "fits.csv with a negative alpha": (add_fits(fits_value("alpha_s", "-1e-6")), FITS_READERS,
                                       ["fits.csv", "line 2", "alpha_s -1e-06"]),
    "fits.csv with an unknown model": (
        add_fits(lambda L: [L[0]] + [x.replace("hockney", "bogus") for x in L[1:]]),
        FITS_READERS, ["fits.csv", "model 'bogus'"]),
    "fits.csv empty": (add_fits(lambda L: []), FITS_READERS, ["fits.csv", "empty"]),
    "fits.csv not a fits file": (add_fits(lambda L: ["a,b", "1,2", ""]), FITS_READERS,
                                 ["fits.csv", "not a fits file"]),
    "fits.csv a directory": (replace_by_dir("fits.csv"), FITS_READERS | {"fit"},
                             ["fits.csv", "directory"]),
}


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.slow
def test_every_verb_on_a_damaged_run(case, verb, templates, tmp_path, capsys):
    damage, failing, needles = CASES[case]
    run = tmp_path / "run"
    shutil.copytree(templates["run"], run)
    if getattr(damage, "needs_fits", False):
        damage(run, templates["fitted"])
    else:
        damage(run)
    rc, out, err = run_cli(capsys, *verb_argv(verb, run, templates["baseline"], tmp_path))
    if verb in failing:
        assert_one_line_error(rc, out, err, *needles)
        assert str(run) in err or run.name in err
    else:  # a file this verb does not read
        assert_works(rc, out, err)


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.slow
def test_every_verb_works_on_the_valid_run(verb, templates, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(templates["run"], run)
    rc, out, err = run_cli(capsys, *verb_argv(verb, run, templates["baseline"], tmp_path))
    assert_works(rc, out, err)


def test_damaged_run_as_the_baseline_of_compare(templates, tmp_path, capsys):
    run = tmp_path / "base"
    shutil.copytree(templates["run"], run)
    set_field("samples.csv", "time_s", "-0.5", line=3)(run)
    rc, out, err = run_cli(capsys, "compare", run, templates["baseline"])
    assert_one_line_error(rc, out, err, "base/samples.csv", "line 3", "time_s -0.5")


def test_a_run_without_samples(templates, tmp_path, capsys):
    """A run that died before its first case: fit has nothing to fit, compare and predict
    say so in one line."""
    run = tmp_path / "run"
    write_small_run(run, small_samples().iloc[:0])
    rc, out, err = run_cli(capsys, "fit", run, "--bootstrap", "0")
    assert rc == 0 and "(nothing to fit)" in out
    (run / "fits.csv").unlink()
    rc, out, err = run_cli(capsys, *verb_argv("predict", run, None, tmp_path))
    assert_one_line_error(rc, out, err, "no samples to fit")
    rc, out, err = run_cli(capsys, "compare", templates["baseline"], run)
    assert_one_line_error(rc, out, err, "no samples")


@pytest.mark.slow
def test_torn_last_line_is_still_dropped(templates, tmp_path, capsys):
    """The crash the format allows (a torn last line of samples.csv) is not damage."""
    run = tmp_path / "run"
    shutil.copytree(templates["run"], run)
    with open(run / "samples.csv", "a") as f:
        f.write("mpi,allreduce,float32,8,2,al")
    for verb in ("fit", "compare", "links"):
        assert_works(*run_cli(capsys, *verb_argv(verb, run, templates["baseline"], tmp_path)))


# ---------------------------------------------------------------- predict --fits
@pytest.mark.parametrize("content, needles", [
    (b"", ["fits.csv", "empty"]),
    (b"\x89PNG\r\n\x1a\n\x00\x00", ["not UTF-8"]),
    (b"backend,op\nmpi,allreduce\n", ["not a fits file", "no model"]),
    (None, ["samples.csv", "not a fits file"]),
])
def test_predict_fits_file(content, needles, templates, tmp_path, capsys):
    if content is None:
        file = tmp_path / "samples.csv"
        shutil.copy(templates["run"] / "samples.csv", file)
    else:
        file = tmp_path / "fits.csv"
        file.write_bytes(content)
    rc, out, err = run_cli(capsys, "predict", "--fits", file, "--op", "allreduce", "--nranks", "2",
                                    "--nbytes", "64")
    assert_one_line_error(rc, out, err, str(file), *needles)


def test_predict_fits_file_valid_and_nan(templates, tmp_path, capsys):
    file = tmp_path / "fits.csv"
    shutil.copy(templates["fitted"] / "fits.csv", file)
    argv = ["predict", "--fits", file, "--op", "allreduce", "--nranks", "2", "--nbytes", "1K"]
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 0 and "time" in out and "GB/s" in out
    assert_works(rc, out, err)
    for value in ("nan", "inf", "-inf", ""):
        lines = (templates["fitted"] / "fits.csv").read_text().split("\n")
        file.write_text("\n".join(fits_value("alpha_s", value)(lines)))
        rc, out, err = run_cli(capsys, *argv)
        assert_one_line_error(rc, out, err, "fits.csv", "alpha_s" if value != "nan" else "value")
        assert out == ""


# ---------------------------------------------------------------- read-only run directories
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


@pytest.fixture
def read_only(monkeypatch):
    """make(path): the directory tree read-only (chmod; and, since root ignores modes, every
    write under it refused by EACCES as a read-only mount would: open for writing, mkdir,
    rename, replace, unlink), so the test means the same for every user."""
    roots = []

    def inside(path) -> bool:
        try:
            p = os.path.abspath(os.fspath(path))
        except TypeError:
            return False
        return any(p == r or p.startswith(r + os.sep) for r in roots)

    def refuse(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

    real_open, real_os_open = builtins.open, os.open

    def guarded_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+") and inside(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        if flags & WRITE_FLAGS and inside(path):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def guard_path(real, *positions):
        def guarded(*args, **kwargs):
            for i in positions:
                if i < len(args) and inside(args[i]):
                    refuse(args[i])
            return real(*args, **kwargs)
        return guarded

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    for name, positions in (("mkdir", (0,)), ("rename", (0, 1)), ("replace", (0, 1)),
                            ("unlink", (0,)), ("remove", (0,)), ("rmdir", (0,))):
        monkeypatch.setattr(os, name, guard_path(getattr(os, name), *positions))

    def make(path):
        path = Path(path)
        for p in [path, *path.rglob("*")]:
            p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        roots.append(os.path.abspath(path))
        return path

    yield make
    made = list(roots)
    roots.clear()
    for root in made:
        for p in [Path(root), *Path(root).rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)


def listing(path):
    return sorted((str(p.relative_to(path)), p.stat().st_size) for p in Path(path).rglob("*"))


@pytest.mark.slow
def test_read_only_run(templates, tmp_path, capsys, read_only):
    run = tmp_path / "ro"
    shutil.copytree(templates["fitted"], run)
    bare = tmp_path / "ro-bare"  # without fits.csv
    shutil.copytree(templates["run"], bare)
    read_only(run)
    read_only(bare)
    before = listing(run), listing(bare)
    # verbs that only read work
    assert_works(*run_cli(capsys, "compare", templates["baseline"], run))
    assert_works(*run_cli(capsys, "links", run))
    assert_works(*run_cli(capsys, *verb_argv("predict", run, None, tmp_path)))
    rc, out, err = run_cli(capsys, "report", run, "--no-fit", "--out", tmp_path / "elsewhere")
    assert rc == 0 and (tmp_path / "elsewhere" / "index.html").is_file()
    # predict fits a run without fits.csv in memory: it cannot save them, and says so
    rc, out, err = run_cli(capsys, *verb_argv("predict", bare, None, tmp_path))
    assert rc == 0 and "time" in out and "without saving" in err and "Traceback" not in err
    # verbs that write into the run fail with one line naming the path
    rc, out, err = run_cli(capsys, "fit", run, "--bootstrap", "0")
    assert_one_line_error(rc, out, err, str(run / "fits.csv"), "cannot write")
    rc, out, err = run_cli(capsys, "report", run, "--no-fit")
    assert_one_line_error(rc, out, err, str(run / "report"), "--out")
    assert (listing(run), listing(bare)) == before


@pytest.mark.slow
def test_unwritable_outputs_of_links(templates, tmp_path, capsys, read_only):
    run = tmp_path / "run"
    shutil.copytree(templates["run"], run)
    (tmp_path / "blocked").mkdir()
    blocked = read_only(tmp_path / "blocked")
    rc, out, err = run_cli(capsys, "links", run, "--csv", blocked / "links.csv")
    assert_one_line_error(rc, out, err, "links.csv", "cannot write")
    rc, out, err = run_cli(capsys, "links", run, "--png", blocked / "maps")
    assert_one_line_error(rc, out, err, "maps", "cannot")
    (tmp_path / "file").write_text("x")
    rc, out, err = run_cli(capsys, "links", run, "--png", tmp_path / "file")
    assert_one_line_error(rc, out, err, "not a directory")


# ---------------------------------------------------------------- path traversal
def pairs_samples(backend, split="all", hosts=("a", "a", "b", "b"), nbytes=(8, 1 << 20)):
    rng = np.random.default_rng(3)
    n = len(hosts)
    rows = []
    for size in nbytes:
        for rnd, peers in enumerate(pairing_rounds(n)):
            for rank, peer in enumerate(peers):
                if peer < 0:
                    continue
                for s in range(3):
                    t = (1e-6 + size / 1e10) * float(np.exp(rng.normal(0, 0.01)))
                    rows.append((backend, "pairs", "float32", size, n, split, rnd, s, rank, 1, t, peer))
    return pd.DataFrame(rows, columns=SAMPLE_COLUMNS + ["peer"])


def files_outside(root, inside):
    return sorted(str(p) for p in Path(root).rglob("*")
                  if not str(p).startswith(str(inside) + os.sep) and p != inside)


@pytest.mark.slow
def test_links_png_names_cannot_escape(tmp_path, capsys):
    evil = "../../ESCAPED"
    df = pd.concat([pairs_samples(evil, split="../up"), pairs_samples("a/b"), pairs_samples("a_b")])
    run = write_small_run(tmp_path / "w" / "run", df, hosts=["a", "a", "b", "b"], nnodes=2)
    out = tmp_path / "w" / "x" / "y" / "maps"
    out.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / "pairs-a_b-all-8.png").symlink_to(victim)  # a planted link is replaced, not followed
    before = files_outside(tmp_path, out)
    rc, stdout, err = run_cli(capsys, "links", run, "--png", out)
    assert rc == 0, err
    assert files_outside(tmp_path, out) == before
    assert victim.read_text() == "keep me"
    names = sorted(p.name for p in out.iterdir())
    assert all(SAFE_NAME.match(n) and not n.startswith(".") for n in names), names
    assert len(names) == 6  # 3 backends x 2 sizes: names that sanitise alike stay apart
    assert not (out / "pairs-a_b-all-8.png").is_symlink()
    assert not list(tmp_path.rglob("ESCAPED*"))
    assert "pairs-mpi" not in stdout and "../" not in "".join(names)


@pytest.mark.slow
def test_report_figure_names_cannot_escape(tmp_path, capsys):
    df = pd.concat([small_samples(ops=("../../op",)), small_samples(ops=("a/b",), seed=2),
                    small_samples(ops=("a_b",), seed=3),
                    pairs_samples("../../ESCAPED", hosts=("a", "a", "b", "b"), nbytes=(8,))])
    df["nranks"] = np.where(df["op"] == "pairs", 4, 2)
    run = write_small_run(tmp_path / "w" / "run", df, run_id="../../RUN", hosts=["a", "a", "b", "b"],
                   nranks=4, nnodes=2)
    out = tmp_path / "w" / "out"
    before = files_outside(tmp_path, out)
    rc, stdout, err = run_cli(capsys, "report", run, "--no-fit", "--out", out)
    assert rc == 0, err
    assert files_outside(tmp_path, out) == before
    names = sorted(p.name for p in out.iterdir())
    assert "index.html" in names
    assert all(SAFE_NAME.match(n) and not n.startswith(".") for n in names), names
    latency = [n for n in names if n.startswith("latency-") and n != "latency-pairs.png"]
    assert len(latency) == 3, names  # ../../op, a/b and a_b: three files
    assert any(n.startswith("links-") for n in names)


def test_report_does_not_follow_a_planted_report_link(templates, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(templates["run"], run)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "report").symlink_to(elsewhere)
    rc, out, err = run_cli(capsys, "report", run, "--no-fit")
    assert_one_line_error(rc, out, err, str(run / "report"), "symbolic link", "--out")
    assert list(elsewhere.iterdir()) == []


# ---------------------------------------------------------------- markdown
HOSTILE_OP = "all|re`du<b>ce</b>[x](http://e.x)![i](http://t.x/p.png)*_~#"


def unescaped_pipes(line):
    return len(re.findall(r"(?<!\\)\|", line))


@pytest.mark.slow
def test_markdown_escapes_what_it_quotes(tmp_path, capsys):
    base = write_small_run(tmp_path / "ba|se`<i>\n[l](u)", small_samples(ops=(HOSTILE_OP,)),
                    run_id="base", source="osu<script>alert(1)</script>")
    new = write_small_run(tmp_path / "new", small_samples(ops=(HOSTILE_OP,), seed=5))
    rc, out, err = run_cli(capsys, "compare", base, new, "--format", "markdown")
    assert rc in (0, 1), err
    lines = out.splitlines()
    assert lines[0].startswith("**commbench compare** BASE ") and "\\n" in lines[0]
    assert lines[2].startswith("| backend | op |")
    table = [line for line in lines if line.startswith("| mpi")]
    assert len(table) == len(SMALL_SIZES)
    for line in table + lines[:1]:
        assert unescaped_pipes(line) == (len(compare_output.HEADER) + 1 if line.startswith("|") else 0)
        assert not re.search(r"(?<!\\)`", line)        # no code span opens
        assert "<b>" not in line and "<i>" not in line  # no HTML
        assert not re.search(r"(?<!\\)\]\(", line)     # no link or image
        assert not re.search(r"(?<!\\)!(?!\\\[)\[", line)
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "`commbench run --repeats 5`" in out or "`--launches 3`" in out  # our own code spans stay
    # the text format stays on one line per row too; json keeps the names exactly
    rc, out, err = run_cli(capsys, "compare", base, new)
    assert len([line for line in out.splitlines() if line.startswith("mpi")]) == len(SMALL_SIZES)
    rc, out, err = run_cli(capsys, "compare", base, new, "--format", "json")
    assert {r["op"] for r in json.loads(out)["rows"]} == {HOSTILE_OP}


def test_markdown_escape_function():
    assert output_formats.md_escape("a|b") == "a\\|b"
    assert output_formats.md_escape("x\ny") == "x\\\\ny"
    assert output_formats.md_escape("<img src=x>") == "&lt;img src=x&gt;"
    assert output_formats.md_escape("reduce_scatter-1.0") == "reduce_scatter-1.0"
    assert output_formats.md_escape("[a](b) `c` *d*") == "\\[a\\]\\(b\\) \\`c\\` \\*d\\*"
