"""The house is one-way: measurement (bench/) never imports analysis, the core (bench/core/)
imports neither side, no bench module loads pandas, scipy or matplotlib, there are no import
circles and no private names cross modules. Checked on the source (an AST walk of every
import, at module level or inside functions), and on real ranks (what a rank process loads)."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import QUICK, ROOT, commbench_env, mpiexec, needs_mpi

HEAVY = ("pandas", "scipy", "matplotlib")
COMMAND_LAYER = "bench.cli"  # the one module that names both sides


def modules() -> dict[str, Path]:
    found = {}
    for package in ("bench", "analysis"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import statement in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            out.append((base, [alias.name for alias in node.names]))
    return out


def project_edges() -> dict[str, set[str]]:
    """module -> the project modules it imports (a `from pkg import mod` counts as pkg.mod)."""
    mods = modules()
    edges = {}
    for name, path in mods.items():
        targets = set()
        for module, names in imports_of(name, path):
            for candidate in [f"{module}.{n}" for n in names] + [module]:
                if candidate in mods:
                    targets.add(candidate)
                    break
        edges[name] = targets - {name}
    return edges


@pytest.mark.slow
def test_bench_never_imports_analysis():
    bad = [(m, t) for m, ts in project_edges().items() for t in ts
           if m.startswith("bench") and m != COMMAND_LAYER and t.startswith("analysis")]
    assert not bad, f"measurement imports analysis: {bad}"


@pytest.mark.slow
def test_core_imports_neither_side():
    bad = [(m, t) for m, ts in project_edges().items() for t in ts
           if m.startswith("bench.core") and not (t.startswith("bench.core") or t == "bench")]
    assert not bad, f"the core imports outside itself: {bad}"


@pytest.mark.slow
def test_measurement_never_loads_heavy_libraries():
    bad = [(name, module) for name, path in modules().items() if name.startswith("bench")
           for module, _ in imports_of(name, path) if module.split(".")[0] in HEAVY]
    assert not bad, f"bench modules import {HEAVY}: {bad}"


@pytest.mark.slow
def test_no_import_circles():
    edges = project_edges()
    state, stack, circles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


@pytest.mark.slow
def test_no_private_names_across_modules():
    mods = modules()
    bad = [(name, module, n) for name, path in mods.items() for module, names in imports_of(name, path)
           if module.split(".")[0] in ("bench", "analysis") for n in names
           if n.startswith("_") and not n.startswith("__")]
    assert not bad, f"private names imported across modules: {bad}"


def test_the_checks_can_fail(tmp_path):
    """The walk sees imports inside functions and relative imports (else the checks above
    would pass vacuously)."""
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from analysis.run_frames import load_run\n    from ._x import _y\n")
    found = imports_of("bench.probe", path)
    assert ("analysis.run_frames", ["load_run"]) in found and ("bench._x", ["_y"]) in found


# ---- what a rank really loads ---------------------------------------------------------------
def loaded_heavy(stderr: str) -> list[str]:
    """Heavy top-level packages in `python -X importtime` output (one line per import)."""
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$", stderr, re.MULTILINE)
    return [n for n in names if n in HEAVY]


@needs_mpi
def test_ranks_under_mpiexec_load_no_heavy_library(tmp_path):
    argv = [mpiexec(), "-n", "2", "--oversubscribe", sys.executable, "-X", "importtime", "-m",
            "bench.cli", "run", "--ops", "allreduce,pingpong", "--sizes", "4,4K", *QUICK,
            "--out", str(tmp_path / "run")]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=commbench_env())
    assert r.returncode == 0, r.stderr[-3000:]
    assert "import time:" in r.stderr and "| bench.rank_loop" in r.stderr  # the probe works
    assert loaded_heavy(r.stderr) == []


@needs_mpi
def test_local_launch_loads_heavy_libraries_only_in_the_parent(tmp_path):
    """`commbench run` (its own launcher) prints the tables in the parent: pandas is imported
    there once, never in a rank."""
    quick = [a for a in QUICK if a != "-q"]
    argv = [sys.executable, "-m", "bench.cli", "run", "-n", "2", "--ops", "allreduce",
            "--sizes", "4", *quick, "--out", str(tmp_path / "run")]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                       env=commbench_env(PYTHONPROFILEIMPORTTIME="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "# allreduce" in r.stdout
    assert r.stderr.count("| bench.rank_loop") == 2  # both ranks were seen
    assert loaded_heavy(r.stderr).count("pandas") == 1


@needs_mpi
def test_rank_zero_prints_its_tables_without_heavy_libraries(tmp_path):
    """Under an outside launcher without -q, rank 0 prints the end-of-run output (the tables,
    the node section of a pairs run, the machine lines) and still loads no pandas: the node
    section is made in a process of its own (`-X importtime` is not passed on to it)."""
    quick = [a for a in QUICK if a != "-q"]
    argv = [mpiexec(), "-n", "2", "--oversubscribe", sys.executable, "-X", "importtime", "-m",
            "bench.cli", "run", "--ops", "allreduce,pairs", "--sizes", "4", *quick,
            "--out", str(tmp_path / "run")]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=commbench_env())
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.count("| bench.rank_loop") == 2  # both ranks were seen
    assert r.stderr.count("| bench.end_of_run") == 1  # rank 0 printed, through bench.end_of_run
    assert "# allreduce" in r.stdout and "# pairs" in r.stdout
    assert "# nodes: 2 ranks on 1 host" in r.stdout and "# link map of the pairs op" in r.stdout
    assert f"# results: {tmp_path / 'run'}" in r.stdout
    assert loaded_heavy(r.stderr) == []
    # the same lines as the local launcher prints from the files, read and checked by analysis
    import contextlib
    import io

    from analysis.finished_run import checked_run, nodes_text
    from bench.end_of_run import print_end_of_run

    checked = io.StringIO()
    with contextlib.redirect_stdout(checked):
        meta, rows, shown_dir = checked_run(tmp_path / "run")
        print_end_of_run(meta, rows, shown_dir, lambda: nodes_text(tmp_path / "run", meta))
    assert r.stdout == checked.getvalue()
