"""How busy the machine was with other work while a run measured: system-wide CPU time from
/proc/stat against the job's own CPU time, hypervisor steal time, and involuntary context
switches of the ranks. A report can then say "this run was contended" with a number."""
from __future__ import annotations

import os
import resource
import socket
import time

CONTENDED_SHARE = 0.10  # other work above 10% of the CPUs, or steal above 5%, is contention
STEAL_SHARE = 0.05


def _proc_stat() -> tuple[float, float] | None:
    """(busy, steal) CPU seconds of all CPUs since boot."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq) / hz, steal / hz


def snapshot() -> dict:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stat = _proc_stat()
    return {"host": socket.gethostname(), "t": time.monotonic(),
            "self_cpu_s": usage.ru_utime + usage.ru_stime, "invol_switches": usage.ru_nivcsw,
            "busy_s": stat[0] if stat else None, "steal_s": stat[1] if stat else None}


def window(start: dict, end: dict) -> dict:
    """This rank's share of a measuring window."""
    delta = {k: end[k] - start[k] for k in ("t", "self_cpu_s", "invol_switches")}
    for k in ("busy_s", "steal_s"):
        delta[k] = end[k] - start[k] if start[k] is not None and end[k] is not None else None
    return {"host": end["host"], "wall_s": delta["t"], **{k: v for k, v in delta.items() if k != "t"}}


def summarize(windows: list[dict]) -> dict:
    """Per host: CPU time other processes used while the ranks measured."""
    cpus = os.cpu_count() or 1
    hosts: dict = {}
    for w in windows:
        hosts.setdefault(w["host"], []).append(w)
    out = {}
    for host, ws in hosts.items():
        first = ws[0]  # system-wide numbers are the same for every rank on the host
        wall = max(w["wall_s"] for w in ws)
        job = sum(w["self_cpu_s"] for w in ws)
        entry = {"wall_s": wall, "cpus": cpus, "ranks": len(ws), "job_cpu_s": job,
                 "involuntary_switches": sum(w["invol_switches"] for w in ws)}
        if first["busy_s"] is not None and wall > 0:
            other = max(0.0, first["busy_s"] - job)
            entry.update(busy_cpu_s=first["busy_s"], other_cpu_s=other,
                         other_share=other / (wall * cpus), steal_share=first["steal_s"] / (wall * cpus))
            entry["contended"] = bool(entry["other_share"] > CONTENDED_SHARE
                                      or entry["steal_share"] > STEAL_SHARE)
        out[host] = entry
    return {"rule": f"contended when other processes used more than {CONTENDED_SHARE:.0%} of the "
                    f"CPUs or steal exceeded {STEAL_SHARE:.0%} while the ranks measured",
            "hosts": out}


def worst(earlier: dict | None, later: dict) -> dict:
    """Per host, the more contended of two launches' records (a run is as quiet as its worst
    stretch)."""
    if not earlier:
        return later
    hosts = dict(earlier.get("hosts", {}))
    for host, entry in later.get("hosts", {}).items():
        if entry.get("other_share", 0) >= hosts.get(host, {}).get("other_share", -1):
            hosts[host] = entry
    return {**later, "hosts": hosts}

