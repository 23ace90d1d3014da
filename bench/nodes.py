"""Node awareness: which ranks share a host, and the communicators of `--split`.

The host map comes from the hostname every rank reports (not from rank arithmetic), so any
placement a launcher chose is handled. Splits (as nccl-tests' NCCL_TESTS_SPLIT, but from the
real host map):
  all    the whole world
  intra  one communicator per node, holding that node's ranks (purely intra-node)
  inter  one communicator per local index: the i-th rank of every node (purely inter-node)
Both intra and inter need the same number of ranks on every node, so that every communicator
of a split has the same size and runs the same cases at the same time.
"""
from __future__ import annotations

from bench.core.errors import UsageError

SPLITS = ("all", "intra", "inter")


def parse_splits(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not names:
        raise UsageError("--split: none given")
    for name in names:
        if name not in SPLITS:
            raise UsageError(f"--split {name!r}: known are {', '.join(SPLITS)}")
    return names


def node_names(hosts: list[str]) -> list[str]:
    """Distinct hosts in order of their first rank."""
    return list(dict.fromkeys(hosts))


def node_index(hosts: list[str]) -> list[int]:
    """Per rank: the index of its node in node_names(hosts)."""
    order = {h: i for i, h in enumerate(node_names(hosts))}
    return [order[h] for h in hosts]


def local_index(hosts: list[str]) -> list[int]:
    """Per rank: its position among the ranks of its node (by rank)."""
    seen: dict[str, int] = {}
    out = []
    for h in hosts:
        out.append(seen.get(h, 0))
        seen[h] = out[-1] + 1
    return out


def ranks_per_node(hosts: list[str]) -> dict[str, int]:
    return {h: hosts.count(h) for h in node_names(hosts)}


def split_size(split: str, hosts: list[str]) -> int:
    """Ranks in each communicator of `split`; UsageError when the split cannot be made."""
    if split == "all":
        return len(hosts)
    per_node = set(ranks_per_node(hosts).values())
    if len(per_node) != 1:
        raise UsageError(f"--split {split} needs the same number of ranks on every node, got "
                         + ", ".join(f"{h}: {c}" for h, c in ranks_per_node(hosts).items()))
    ppn = per_node.pop()
    return ppn if split == "intra" else len(hosts) // ppn


def color(split: str, rank: int, hosts: list[str]) -> int:
    """Which communicator of `split` the rank belongs to (ordered by rank inside it)."""
    if split == "intra":
        return node_index(hosts)[rank]
    if split == "inter":
        return local_index(hosts)[rank]
    return 0


def members(split: str, rank: int, hosts: list[str]) -> list[int]:
    """World ranks of the communicator `rank` is in, in the order of their ranks there."""
    mine = color(split, rank, hosts)
    return [r for r in range(len(hosts)) if color(split, r, hosts) == mine]


def split_backend(be, split: str, hosts: list[str]):
    """The backend on this rank's communicator of `split` (collective over the world)."""
    if split == "all":
        return be
    if not hasattr(be, "split"):
        raise UsageError(f"backend {be.name} cannot make sub-communicators (--split {split})")
    sub = be.split(color(split, be.rank, hosts), be.rank)
    expected = members(split, be.rank, hosts)
    if sub.size != len(expected) or expected[sub.rank] != be.rank:
        raise RuntimeError(f"--split {split}: communicator does not match the host map")
    return sub
