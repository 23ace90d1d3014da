"""`commbench triage` on the emulated cluster.

    python tests/benchmarks/triage_netns.py [--repeats 3] [--nodes 6]

Prints, per repeat: the time of the pairs run (all pairs: N - 1 rounds in one launch) and of the
collectives run, triage's exit status and drain list, shaped and unshaped, and `triage --find`'s
rounds, launches, time and drain list (shaped and unshaped).
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from tests.conftest import commbench_env, mpiexec
from tests.netns_cluster import Cluster, _sh

# the description of --help (not the docstring: python -OO strips docstrings)
DESCRIPTION = """The figures of `commbench triage` on the emulated cluster (tests/netns_cluster.py; root):
six nodes, one rank each, 300 Mbit/s egress, one node shaped to a third."""

RATE = 300e6


def timed(fn):
    start = time.monotonic()
    out = fn()
    return out, time.monotonic() - start


def main():
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=6)
    args = parser.parse_args()
    env = commbench_env()
    quick = ["--launches", "1", "--repeats", "1", "--no-noise", "--no-ceilings", "-q"]
    with tempfile.TemporaryDirectory() as tmp, Cluster(args.nodes, default_rate_bps=RATE) as c:
        def run(out, *opts):
            r = c.mpirun(mpiexec(), [sys.executable, "-m", "bench.cli", "run", "--out", out,
                                     *quick, *opts], env=env, timeout=300)
            assert r.returncode == 0, r.stderr[-2000:]

        def commbench(*argv):
            return subprocess.run([sys.executable, "-m", "bench.cli", *map(str, argv)],
                                  capture_output=True, text=True, env=env, timeout=600)

        options = c.mpirun_options(1)
        options[options.index("-n") + 1] = "{n}"
        options[options.index("--host") + 1] = "{hosts}"
        template = shlex.join(c.head_argv([mpiexec(), *options]))
        for shaped in (True, False):
            # htb cannot change its root in place: remove it, then shape anew
            _sh("ip", "netns", "exec", c.ns("node2"), "tc", "qdisc", "del", "dev", "eth0", "root")
            c.shape("node2", RATE / 3 if shaped else RATE)
            for i in range(args.repeats):
                base = Path(tmp) / f"{'shaped' if shaped else 'unshaped'}{i}"
                _, t_pairs = timed(lambda: run(base / "pairs", "--ops", "pairs", "--sizes", "1M",
                                               "--budget", "0.3", "--min-samples", "5"))
                _, t_coll = timed(lambda: run(base / "coll", "--ops", "allreduce", "--sizes", "1M",
                                              "--budget", "0.5", "--min-samples", "10"))
                r = commbench("triage", base / "pairs", base / "coll")
                drain = re.search(r"^drain \(\d+\): (.*)$", r.stdout, re.MULTILINE).group(1)
                f, t_find = timed(lambda: commbench(
                    "triage", "--find", f"node[0-{args.nodes - 1}]", "--launch", template,
                    "--out", base / "find", "--run-args", "--budget 0.3 --min-samples 8"))
                rounds = re.search(r"^rounds: (\d+) ", f.stdout, re.MULTILINE).group(1)
                found = re.search(r"^drain \(\d+\): (.*)$", f.stdout, re.MULTILINE).group(1)
                print(f"{'shaped' if shaped else 'unshaped'} {i}: pairs run {t_pairs:.1f} s "
                      f"({args.nodes - 1} rounds, 1 launch), collectives run {t_coll:.1f} s; "
                      f"triage exit {r.returncode}, drain {drain}; --find exit {f.returncode}, "
                      f"{rounds} rounds = launches, {t_find:.1f} s, drain {found}", flush=True)


if __name__ == "__main__":
    main()
