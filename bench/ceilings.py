"""What the machine itself allows, measured at the start of a run (`meta.json` → `ceilings`),
so that every bandwidth can be set against a limit: the memory copy rate of one core (the
limit of a shared-memory transport, where each message is copied by one rank) and of all
ranks of a node copying at once (the node's limit), the copy rate within the GPU of each
backend whose buffers live there (device to device: no transfer between GPUs beats it), and
the line rates the network devices declare (`/sys/class/net/*/speed`,
`/sys/class/infiniband/*/ports/*/rate`). A summary row's `ceiling` names the limit that
applies and `efficiency` = busbw / that limit (multipair: algbw, all pairs together, against
the node's copy rate)."""
from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import nodes
from bench.core.errors import UsageError
from bench.core.runmeta import CEILINGS, COPY_BYTES, COPY_REPEATS


def copy_rates(nbytes: int = COPY_BYTES, repeats: int = COPY_REPEATS, clock=time.perf_counter,
               barrier=None) -> list:
    """Bytes per second of each of `repeats` numpy copies of an nbytes buffer (the first
    touches the pages of dst, so it is one more, not counted). With a barrier, all ranks
    copy at the same time (the node's shared memory bandwidth)."""
    src = np.ones(nbytes, dtype=np.uint8)
    dst = np.zeros(nbytes, dtype=np.uint8)
    np.copyto(dst, src)
    rates = []
    for _ in range(repeats):
        if barrier:
            barrier()
        t0 = clock()
        np.copyto(dst, src)
        elapsed = clock() - t0
        rates.append(nbytes / elapsed if elapsed > 0 else float("nan"))
    return rates


def copy_rate(nbytes: int = COPY_BYTES, repeats: int = COPY_REPEATS, clock=time.perf_counter,
              barrier=None) -> float:
    """The best of copy_rates."""
    rates = [r for r in copy_rates(nbytes, repeats, clock, barrier) if r == r]
    return max(rates) if rates else float("nan")


def spread(rates: list) -> dict:
    """The spread of a list of copy rates: min, median and max (bytes per second)."""
    rates = sorted(r for r in rates if r == r)
    if not rates:
        return {}
    return {"min": rates[0], "median": float(np.median(rates)), "max": rates[-1]}


def _speed_Bps(text: str) -> float | None:
    """Line rate in bytes/s from sysfs: '25000' (Mb/s, net) or '100 Gb/sec (4X EDR)' (IB)."""
    match = re.match(r"\s*(\d+(?:\.\d+)?)\s*(Gb/sec|Mb/sec)?", text)
    if not match or float(match.group(1)) <= 0:
        return None
    value = float(match.group(1))
    return value * (1e9 if match.group(2) == "Gb/sec" else 1e6) / 8


def line_rates(sysfs: Path = Path("/sys/class")) -> list[dict]:
    """Network devices that declare a line rate (loopback and virtual ones declare none)."""
    found = []
    sources = ((sysfs / "net", "*/speed", lambda path: path.parent.name),
               (sysfs / "infiniband", "*/ports/*/rate",
                lambda path: f"{path.parents[2].name}/{path.parent.name}"))
    for root, pattern, device in sources:
        for path in sorted(root.glob(pattern)):
            try:
                rate = _speed_Bps(path.read_text())
            except OSError:
                continue
            if rate:
                found.append({"device": device(path), "rate_Bps": rate, "source": str(path)})
    return found


def measure(be, sync, backends=()) -> dict | None:
    """On every rank (collective); rank 0 gets the record, the others None. One core's copy
    rate is rank 0's alone (the others wait), and so is the copy rate within the GPU of each of
    `backends` that keeps its buffers there; the node's is every rank copying at once."""
    sync.barrier()
    one_rates = copy_rates() if be.rank == 0 else []
    device = {}
    for b in backends if be.rank == 0 else ():
        rate = b.device_copy_rate(COPY_BYTES, COPY_REPEATS)
        if rate is not None:
            device[b.name] = rate
    sync.barrier()
    mine = copy_rate(barrier=sync.barrier)
    gathered = be.gather({"host": socket.gethostname(), "copy_Bps": mine, "nics": line_rates()})
    if be.rank != 0:
        return None
    hosts: dict = {}
    for g in gathered:
        entry = hosts.setdefault(g["host"], {"ranks": 0, "copy_node_Bps": 0.0, "nics": g["nics"]})
        entry["ranks"] += 1
        entry["copy_node_Bps"] += g["copy_Bps"]
    one = spread(one_rates)
    return {"method": f"numpy copy of {COPY_BYTES >> 20} MiB, best of {COPY_REPEATS}: rank 0 "
                      "alone (copy_one_core_Bps; copy_one_core_spread_Bps: min, median and max "
                      "of its copies), then every rank at once (copy_node_Bps, the sum "
                      "over a host's ranks); on a GPU, rank 0's device-to-device copy of as "
                      "much, timed by CUDA events (copy_device_Bps, per backend); line rates as "
                      "the devices declare them",
            "copy_one_core_Bps": one.get("max", float("nan")), "copy_one_core_spread_Bps": one,
            "hosts": hosts,
            **({"copy_device_Bps": device} if device else {})}


def applicable(ceilings: dict | None, op, across_nodes: bool, backend: str = "",
               on_device: bool = False) -> tuple[str, float]:
    """(name, bytes/s) of the limit a row of `op` runs into, or ('', nan) when none is known.
    Across nodes: the slowest line rate declared; on one node, buffers on a GPU: the copy rate
    within that GPU (`copy-device`, of the row's backend); host memory: one core's copy rate,
    or for an op whose ranks all move data at once (op.node_wide: multipair) the node's."""
    if not ceilings:
        return "", float("nan")
    hosts = ceilings.get("hosts", {})
    if across_nodes:
        rates = [nic["rate_Bps"] for h in hosts.values() for nic in h.get("nics", [])]
        return ("nic", min(rates)) if rates else ("", float("nan"))
    if on_device:
        rate = (ceilings.get("copy_device_Bps") or {}).get(backend)
        return ("copy-device", rate) if rate else ("", float("nan"))
    if op.node_wide:
        node = min((h["copy_node_Bps"] for h in hosts.values()), default=float("nan"))
        return "copy-node", node
    return "copy-core", ceilings.get("copy_one_core_Bps") or float("nan")


def efficiency(row: dict, op, ceiling_Bps: float) -> float:
    """The row's bandwidth as a share of the ceiling (busbw; node-wide ops: algbw)."""
    rate = row["algbw_Bps"] if op.node_wide else row["busbw_Bps"]
    if not (ceiling_Bps > 0) or rate != rate:
        return float("nan")
    return rate / ceiling_Bps


def spans_nodes(split: str, meta: dict) -> bool:
    """Whether a communicator of `split` holds ranks of several hosts (meta.json → hosts; a
    run without a host map: any split but intra of a multi-node run)."""
    hosts: Any = meta.get("hosts")  # anything: what is not a host list is a TypeError below
    try:
        return len({hosts[r] for r in nodes.members(split, 0, hosts)}) > 1
    except (TypeError, KeyError, IndexError, UsageError):
        return (meta.get("nnodes") or 1) > 1 and split != "intra"


def on_device(backend: str, meta: dict) -> bool:
    """Whether the buffers of `backend` were on a GPU (meta.json → backends)."""
    found = (meta.get("backends") or {}).get(backend)
    return isinstance(found, dict) and str(found.get("device", "")).startswith("cuda")


def columns(row: dict, op, meta: dict) -> tuple[str, float]:
    """(ceiling, efficiency) of a summary row, from the ceilings in the run's meta.json."""
    if not op.sized:  # no data, no bandwidth
        return "", float("nan")
    backend = row.get("backend", "")
    name, rate = applicable(meta.get(CEILINGS), op, spans_nodes(row["split"], meta), backend,
                            on_device(backend, meta))
    return name, efficiency(row, op, rate)

