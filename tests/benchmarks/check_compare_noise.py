"""False-alarm rate and power of `commbench compare` on this machine (issue 7).

    python tests/benchmarks/check_compare_noise.py [--pairs 10] [--loaded 3] [--out DIR]

1. False alarms: 2 × PAIRS runs of one configuration, back to back; each consecutive pair is
   compared at the default factor. Target: at most 5% of rows flagged "slower".
2. Power: LOADED runs made while busy loops occupy every core, each compared with a quiet run.
   Every row whose median really is 1.5x slower or more must be flagged "slower".
Run it on an otherwise quiet machine; it takes a few minutes.
"""
import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time

CONFIG = ["-n", "2", "--ops", "allreduce,pingpong,allgather", "--sizes", "8,4K,256K",
          "--repeats", "5", "--budget", "0.5", "--no-noise", "-q"]


def commbench(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True,
                       timeout=600)
    if check and r.returncode not in (0, 1):
        raise SystemExit(f"commbench {' '.join(args)} failed ({r.returncode}): {r.stderr[-2000:]}")
    return r


def run(out):
    commbench("run", *CONFIG, "--out", out)
    return out


def compare(base, new):
    r = commbench("compare", base, new, "--format", "json")
    return json.loads(r.stdout)


def busy(stop_at):
    while time.time() < stop_at:
        pass


def rows_of(result):
    return result["rows"] if isinstance(result, dict) else result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--loaded", type=int, default=3)
    p.add_argument("--out", default=tempfile.mkdtemp(prefix="cb-noise-"))
    a = p.parse_args()
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")

    quiet = [run(f"{a.out}/quiet{i}") for i in range(2 * a.pairs)]
    flagged = total = 0
    for i in range(a.pairs):
        rows = rows_of(compare(quiet[2 * i], quiet[2 * i + 1]))
        total += len(rows)
        flagged += sum(r["verdict"] == "slower" for r in rows)
    print(f"false alarms: {flagged}/{total} rows flagged slower over {a.pairs} same-configuration "
          f"pairs = {flagged / total:.1%} (target <= 5%)")

    hits = slow = 0
    ratios = []
    for i in range(a.loaded):
        stop_at = time.time() + 600
        procs = [multiprocessing.Process(target=busy, args=(stop_at,)) for _ in range(os.cpu_count() or 1)]
        for proc in procs:
            proc.start()
        try:
            loaded = run(f"{a.out}/loaded{i}")
        finally:
            for proc in procs:
                proc.terminate()
        base = quiet[i]
        for r in rows_of(compare(base, loaded)):
            ratios.append(r["ratio"])
            if r["ratio"] >= 1.5:
                slow += 1
                hits += r["verdict"] == "slower"
    print(f"power: {hits}/{slow} rows at least 1.5x slower were flagged slower "
          f"(target: all); ratios under load {min(ratios):.2f}-{max(ratios):.2f}x")
    print(f"runs kept in {a.out}")


if __name__ == "__main__":
    main()
