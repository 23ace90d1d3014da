"""Finding the bad nodes of a fleet in far fewer rounds than all pairs (N − 1 rounds of N/2
disjoint pairs): the scheduling and the decisions, pure (no measurement, no I/O). `commbench
triage --find` drives it with `commbench run` on every round's groups; tests drive it with a
stand-in that injects faults (tests/fakes.py).

A round is a set of disjoint groups of `group_size` (k) nodes measured at once (one launch: a
collective on every group's communicator, `--split group:k:1`). Each group's time becomes a rate
1/time, judged against the round's other groups by the rules of `commbench triage` (robust z,
analysis.robust_z). All groups of a round have k nodes, so their times compare. The
median and MAD are those of the round's control groups (below) when it has 3 or more, else of
all its groups: probes may be half slow, controls are healthy by construction.

1. Screen: the nodes, shuffled, in groups of k. Members of a group that is not ok become
   suspects (one suspect set per group); members of ok groups are cleared (the good pool).
2. Bisect: every suspect set of more than one node is halved; each half is measured padded with
   cleared nodes up to k. A half that is not ok stays a suspect set, one that is ok is cleared.
3. Confirm: a suspect set of one node measured with k − 1 cleared partners: `drain` counts a hit,
   anything else clears it (`warn` noted). A node with `confirm` hits, each with other partners,
   is drained.
Nodes left over when N is not a multiple of k are probed one by one from the second round. Every round
also measures the cleared nodes not used for padding in groups of k (controls), so the round's
median is mostly healthy groups. A slow group whose members all clear is reported as a slow
combination (for k = 2, a slow link).

Rounds, one bad node: 1 (screen) + ceil(log2 k) (bisect down to one) + confirm − 1; for k = 2
and confirm = 2 that is 3, for any N; several bad nodes are found in the same rounds as long as
the good pool can pad them. All pairs takes N − 1 rounds.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np

MIN_GROUPS = 3  # a round's verdicts need this many groups to compare (analysis.triage_verdicts.MIN_VALUES)


@dataclass
class Outcome:
    drain: list = field(default_factory=list)     # nodes confirmed slow
    warn: list = field(default_factory=list)      # nodes that were warn in a confirmation
    combos: list = field(default_factory=list)    # slow groups whose members all cleared
    rounds: int = 0
    unresolved: list = field(default_factory=list)  # suspects left when rounds ran out
    history: list = field(default_factory=list)   # per round: (groups, times, verdicts)


class Finder:
    """The state machine: `plan()` the next round's groups (None when done), `record()` their
    measured times, repeat; `outcome` holds the result."""

    def __init__(self, nodes, group_size: int = 2, confirm: int = 2, seed: int = 0,
                 max_rounds: int = 64):
        nodes = list(dict.fromkeys(nodes))
        if group_size < 2:
            raise ValueError("group_size must be at least 2")
        if confirm < 1:
            raise ValueError("confirm must be at least 1")
        if len(nodes) < MIN_GROUPS * group_size:
            raise ValueError(f"{len(nodes)} nodes: at least {MIN_GROUPS * group_size} are needed "
                             f"for {MIN_GROUPS} groups of {group_size} to compare")
        self.k, self.confirm, self.max_rounds = group_size, confirm, max_rounds
        self.rng = random.Random(seed)
        self.nodes = nodes
        self.good: list = []            # cleared, in the order they were cleared
        self.suspects: list = []        # suspect sets (lists of nodes)
        self.hits: dict = {}            # node -> partners of its slow confirmations
        self.outcome = Outcome()
        self._screened = False
        self._plan: list | None = None
        self._slow_screens: list = []
        self._roles: list = []

    # --- planning ------------------------------------------------------------------------
    def plan(self) -> list | None:
        """The next round's groups (tuples of k nodes, disjoint), or None when done."""
        if self._plan is not None:
            return self._plan
        if not self._screened:
            order = self.nodes[:]
            self.rng.shuffle(order)
            whole = len(order) // self.k * self.k
            groups = [tuple(order[i:i + self.k]) for i in range(0, whole, self.k)]
            self._roles = [("screen", list(g)) for g in groups]
            self.suspects += [[n] for n in order[whole:]]  # left over: probed one by one next
            self._plan = groups
            return groups
        if not self.suspects or self.outcome.rounds >= self.max_rounds:
            self._finish()
            return None
        pool = self.good[:]
        self.rng.shuffle(pool)
        groups, roles = [], []
        for members in self.suspects:
            parts = [members] if len(members) == 1 else \
                [members[:len(members) // 2], members[len(members) // 2:]]
            for part in parts:
                partners = self._partners(part, pool, self.k - len(part))
                if partners is None:
                    continue  # not enough cleared nodes this round: stays a suspect
                groups.append(tuple(part) + tuple(partners))
                roles.append(("probe", list(part)))
        while len(pool) >= self.k:  # controls: the round's healthy reference
            groups.append(tuple(pool[:self.k]))
            del pool[:self.k]
            roles.append(("control", []))
        if not any(role == "probe" for role, _ in roles) or len(groups) < MIN_GROUPS:
            self._finish()
            return None
        self._plan, self._roles = groups, roles
        return groups

    def _finish(self) -> None:
        """Done: suspects left are unresolved; a slow screened group none of whose members is
        drained or unresolved is a slow combination (its members were fine with others)."""
        self.outcome.unresolved = sorted(n for s in self.suspects for n in s)
        explained = set(self.outcome.drain) | set(self.outcome.unresolved)
        self.outcome.combos = [c for c in self._slow_screens if not explained & set(c)]
        self.suspects = []

    def _partners(self, part, pool, need):
        """need cleared nodes for part, taken from pool; for a single node, ones it has not been
        confirmed with yet."""
        if need == 0:
            return []
        if len(part) == 1:
            used = set(self.hits.get(part[0], []))
            fresh = [p for p in pool if p not in used]
            if len(fresh) < need:
                return None
            chosen = fresh[:need]
        else:
            if len(pool) < need:
                return None
            chosen = pool[:need]
        for p in chosen:
            pool.remove(p)
        return chosen

    # --- deciding ------------------------------------------------------------------------
    def record(self, groups, times) -> None:
        """The measured time of each planned group (same order); NaN or inf for a group that
        failed counts as slow."""
        from analysis.robust_z import Z_SCALE, robust_z, verdict_of

        if self._plan is None or list(map(tuple, groups)) != list(self._plan):
            raise ValueError("record() takes the groups of the last plan(), in order")
        t = np.asarray(times, dtype=float)
        rate = np.where(np.isfinite(t) & (t > 0), 1.0 / np.where(t > 0, t, 1.0), 0.0)
        controls = np.array([role == "control" for role, _ in self._roles])
        ref = rate[controls] if controls.sum() >= MIN_GROUPS else rate
        _, med = robust_z(ref)
        mad = float(np.median(np.abs(ref - med)))
        z = Z_SCALE * (rate - med) / mad if mad > 0 else np.where(rate < med, -np.inf, 0.0)
        verdicts = [verdict_of(zi, r / med if med > 0 else 0.0) for zi, r in zip(z, rate)]
        self.outcome.rounds += 1
        self.outcome.history.append((list(groups), t.tolist(), verdicts))
        suspects = []
        for group, (role, members), verdict in zip(groups, self._roles, verdicts):
            if role == "control":
                continue  # its members stay cleared: one slow control is noise or news later
            if role == "screen":
                if verdict == "ok":
                    self.good += list(group)
                else:
                    suspects.append(list(group))
                    self._slow_screens.append(tuple(group))
                continue
            if len(members) == 1:
                node = members[0]
                partners = [p for p in group if p != node]
                if verdict == "drain":
                    self.hits.setdefault(node, []).extend(partners)
                    if len(self.hits[node]) >= self.confirm * (self.k - 1):
                        self.outcome.drain.append(node)
                    else:
                        suspects.append([node])
                else:
                    if verdict == "warn":
                        self.outcome.warn.append(node)
                    self.good.append(node)
                continue
            if verdict == "ok":
                self.good += members
            else:
                suspects.append(members)
        # a suspect set not measured this round (no partners) stays
        measured = {n for role, members in self._roles for n in members}
        suspects += [s for s in self.suspects if not set(s) & measured]
        self.suspects = suspects
        self._screened = True
        self._plan = None


def find(nodes, measure, **options) -> Outcome:
    """Run the finder to the end with `measure(groups) -> times` (one time per group)."""
    finder = Finder(nodes, **options)
    while (groups := finder.plan()) is not None:
        finder.record(groups, measure(groups))
    finder.outcome.drain.sort()
    return finder.outcome


def rounds_bound(group_size: int, confirm: int) -> int:
    """Rounds for one bad node (and for several, while the good pool pads them)."""
    return 1 + math.ceil(math.log2(group_size)) + confirm - 1
