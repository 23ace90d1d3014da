"""The words both sides share about what meta.json records of the machine and the job a run
ran on, beside the format's own fields (bench.core.rundir): the names of those sections and
what each holds (results/README.md), how the ceilings were measured and where a measured copy
ceiling is a limit, and the one line each section reads as in tables and reports
(describe_*). Measuring them is bench's (bench.noise, bench.contention, bench.ceilings,
bench.record); analysis reads them through this module only."""
from __future__ import annotations

# The sections, by name, and what each holds (results/README.md → meta.json):
JOB = "job"                # the Slurm job the run was made in, as Slurm's variables give it
                           # on rank 0 (only in a job)
CONTENTION = "contention"  # per host: CPU time other processes took while the ranks measured,
                           # steal, involuntary context switches (the most contended launch)
NOISE = "noise"            # the machine's own noise: timer, OS jitter per rank, an 8-byte
                           # ping-pong's spread over bursts (the first launch)
CEILINGS = "ceilings"      # what the machine allows: copy rates of one core, of all ranks of a
                           # host at once and within each GPU; declared line rates (the first launch)

# ---- ceilings ------------------------------------------------------------------------------
# A copy rate is measured on COPY_BYTES, beyond the last-level caches, best of COPY_REPEATS; a
# message small enough to sit in the caches may beat it, so there it is no limit.
COPY_BYTES = 64 << 20  # larger than the last-level caches of current CPUs
# Best of: a copy preempted once does not count. 15 copies (~0.1-0.2 s) rather than a handful:
# on a shared machine the best of 5 varied 2x run to run, and every efficiency with it.
COPY_REPEATS = 15
IN_CACHE_BYTES = COPY_BYTES // 4  # below this, a message may sit in the caches
COPY_CEILINGS = ("copy-core", "copy-node", "copy-device")


def applies(row: dict) -> bool:
    """Whether the row's ceiling is a limit for it: not where a copy rate measured beyond the
    caches is beaten by a message small enough to sit in them (a cache-resident size)."""
    eff = row.get("efficiency")
    return not (row.get("ceiling") in COPY_CEILINGS and eff is not None and eff == eff
                and eff > 1 and row.get("nbytes", 0) < IN_CACHE_BYTES)


# ---- one line per section ------------------------------------------------------------------
def describe_ceilings(ceilings: dict) -> str:
    """meta.json → ceilings in one line: the copy rates and the declared line rates."""
    parts = [f"one core copies {ceilings['copy_one_core_Bps'] / 1e9:.1f} GB/s"]
    one = ceilings.get("copy_one_core_spread_Bps") or {}
    if one.get("min") and one.get("median"):
        parts[0] += (f" (best of its copies; median {one['median'] / 1e9:.1f}, slowest "
                     f"{one['min'] / 1e9:.1f})")
    for host, h in ceilings.get("hosts", {}).items():
        nics = ", ".join(f"{n['device']} {n['rate_Bps'] * 8 / 1e9:g} Gb/s" for n in h.get("nics", []))
        parts.append(f"{host}: {h['ranks']} ranks copy {h['copy_node_Bps'] / 1e9:.1f} GB/s together"
                     + (f"; {nics}" if nics else "; no line rate declared"))
    for backend, rate in (ceilings.get("copy_device_Bps") or {}).items():
        parts.append(f"the GPU of {backend} copies {rate / 1e9:.1f} GB/s within itself")
    return "; ".join(parts)


def describe_contention(contention: dict) -> str:
    """meta.json → contention in one line: per host, the share of the CPUs other processes
    took and steal, contended or quiet (hosts without /proc/stat figures are left out)."""
    parts = []
    for host, e in contention.get("hosts", {}).items():
        if "other_share" not in e:
            continue
        verdict = "contended" if e["contended"] else "quiet"
        parts.append(f"{host}: other processes took {e['other_share']:.0%} of {e['cpus']} CPUs, "
                     f"steal {e['steal_share']:.0%} ({verdict})")
    return "; ".join(parts)


def describe_noise(noise: dict) -> str:
    """meta.json → noise in one line: the timer's step, the worst rank's jitter and the
    ping-pong's spread over bursts."""
    worst = max(noise["jitter_per_rank"], key=lambda j: j["p99_over_median"])
    text = (f"timer step {noise['timer']['measured_resolution_s'] * 1e9:.0f} ns; jitter p99 "
            f"{worst['p99_over_median']:.2f}x and {worst['interrupted_share']:.1%} of "
            f"{worst['quantum_s'] * 1e6:.0f} us quanta interrupted (worst rank)")
    if noise.get("pingpong"):
        p = noise["pingpong"]
        text += (f"; 8 B ping-pong over {len(p['burst_medians_s'])} bursts "
                 f"{min(p['burst_medians_s']) * 1e6:.2f}-{max(p['burst_medians_s']) * 1e6:.2f} us "
                 f"({p['max_over_min']:.2f}x)")
    return text


def describe_job(job) -> str:
    """meta.json → job in one line: 'Slurm job 12 step 0: node[0-3], tasks per node 1(x4)'
    ('' outside a job)."""
    if not isinstance(job, dict) or not job.get("job_id"):
        return ""
    name = f"Slurm job {job['job_id']}"
    if job.get("array_job_id") and job.get("array_task_id"):
        name += f" (array {job['array_job_id']}_{job['array_task_id']})"
    if job.get("step_id"):
        nodes, tasks = job.get("step_nodelist"), job.get("step_tasks_per_node")
        name += f" step {job['step_id']}"
    else:
        nodes, tasks = job.get("nodelist"), job.get("tasks_per_node")
    where = ", ".join(part for part in (nodes, f"tasks per node {tasks}" if tasks else "") if part)
    return f"{name}: {where}" if where else name
