"""`commbench triage --find` at fleet scale, with a test double for the fleet.

    python tests/benchmarks/finder_rounds.py [--trials 20] [--sizes 64,256,1024,4096,16384]

Per fleet size and group size k: `--trials` fleets, each with `--bad` slow nodes (2x slower) and
one slow link (3x) at random, lognormal noise of 5% per group measurement and transient spikes
(1.5-3x) on 1% of measurements. Prints rounds (mean and max), the share of bad nodes drained
(recall), false positives (healthy nodes drained, over all healthy nodes of all trials) and the
slow link found as a slow combination (only when its two ends happen to share a screen group:
the finder looks for nodes; all pairs looks at every link).
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from analysis.finder import find, rounds_bound
from tests.fakes import FaultyFleet

# the description of --help (not the docstring: python -OO strips docstrings)
DESCRIPTION = """Rounds, nodes found and false positives of `commbench triage --find` (analysis.finder) at
fleet sizes up to 16,384, with the fault-injecting stand-in of the tests (tests/fakes.FaultyFleet:
a test double, not a measurement), against all pairs' N - 1 rounds."""


def main():
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--sizes", default="64,256,1024,4096,16384")
    parser.add_argument("--groups", default="2,4,8")
    parser.add_argument("--bad", type=int, default=3)
    parser.add_argument("--noise", type=float, default=0.05, help="lognormal sigma per measurement")
    parser.add_argument("--spike-p", type=float, default=0.01, help="share of measurements spiked")
    args = parser.parse_args()
    print(f"{'N':>6} {'k':>2} {'bound':>5} {'rounds mean':>11} {'max':>4} {'all pairs':>9} "
          f"{'recall':>7} {'false pos.':>12} {'link met':>10} {'s/trial':>8}")
    for n in map(int, args.sizes.split(",")):
        trials = max(2, args.trials if n <= 4096 else args.trials // 4)
        for k in map(int, args.groups.split(",")):
            rounds, found, fp, links, start = [], 0, 0, 0, time.perf_counter()
            for t in range(trials):
                rng = np.random.default_rng(1000 * t + k)
                picks = rng.choice(n, args.bad + 2, replace=False)
                bad, link = picks[:args.bad].tolist(), (int(picks[-2]), int(picks[-1]))
                fleet = FaultyFleet(n, bad_nodes=bad, slowdown=2.0, bad_links=[link],
                                    noise=args.noise, spike_p=args.spike_p, seed=t)
                out = find(fleet.nodes, fleet, group_size=k, confirm=2, seed=t)
                rounds.append(out.rounds)
                truth = set(fleet.bad())
                found += len(truth & set(out.drain))
                fp += len(set(out.drain) - truth)
                ends = {fleet.nodes[link[0]], fleet.nodes[link[1]]}
                links += any(set(c) >= ends for c in out.combos)
            took = (time.perf_counter() - start) / trials
            healthy = trials * (n - args.bad)
            print(f"{n:>6} {k:>2} {rounds_bound(k, 2):>5} {np.mean(rounds):>11.2f} {max(rounds):>4} "
                  f"{n - 1:>9} {found / (trials * args.bad):>7.1%} {fp:>4}/{healthy:<7} "
                  f"{links:>4}/{trials:<5} {took:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
