"""Node awareness: which ranks share a host, and the communicators of `--split`.

The host map comes from the hostname every rank reports (not from rank arithmetic), so any
placement a launcher chose is handled. Splits (as nccl-tests' NCCL_TESTS_SPLIT, but from the
real host map):
  all    the whole world
  intra  one communicator per node, holding that node's ranks (purely intra-node)
  inter  one communicator per local index: the i-th rank of every node (purely inter-node)
Both intra and inter need the same number of ranks on every node, so that every communicator
of a split has the same size and runs the same cases at the same time.

Layout groups (`commbench workload --measure`), by rank as Megatron-LM places them, not by host:
  group:SIZE:STRIDE  communicators of SIZE ranks STRIDE apart: rank r is in the one of
                     r // (SIZE·STRIDE) · STRIDE + r mod STRIDE. Tensor-parallel groups of
                     t adjacent ranks are group:t:1; data-parallel groups across them
                     group:d:t; pipeline stages group:p:t·d. The world must be a multiple of
                     SIZE·STRIDE.
"""
from __future__ import annotations

from bench.core.errors import UsageError

SPLITS = ("all", "intra", "inter")
GROUP = "group"  # group:SIZE:STRIDE, a layout group


def group_split(size: int, stride: int) -> str:
    """The split name of communicators of `size` ranks `stride` apart."""
    return f"{GROUP}:{size}:{stride}"


def parse_group(split: str) -> tuple[int, int] | None:
    """(size, stride) of a group:SIZE:STRIDE split; None for any other split; UsageError when
    it is malformed."""
    if not split.startswith(GROUP + ":"):
        return None
    parts = split.split(":")
    if len(parts) != 3 or not all(p.isdigit() and int(p) >= 1 for p in parts[1:]):
        raise UsageError(f"--split {split!r}: expected group:SIZE:STRIDE with positive integers")
    return int(parts[1]), int(parts[2])


def parse_splits(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not names:
        raise UsageError("--split: none given")
    for name in names:
        if name not in SPLITS and parse_group(name) is None:
            raise UsageError(f"--split {name!r}: known are {', '.join(SPLITS)}, "
                             f"{GROUP}:SIZE:STRIDE")
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
    group = parse_group(split)
    if group:
        size, stride = group
        if len(hosts) % (size * stride):
            raise UsageError(f"--split {split} needs a multiple of {size * stride} ranks "
                             f"({size} ranks {stride} apart), got {len(hosts)}")
        return size
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
    group = parse_group(split)
    if group:
        size, stride = group
        return rank // (size * stride) * stride + rank % stride
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
