"""The hosts `commbench triage` drains: the reason Slurm keeps for each (its evidence), ready
scontrol lines (analysis.slurm), the --drain file, and --apply-drain."""
from __future__ import annotations

from pathlib import Path

from analysis.triage_verdicts import Result
from bench.core.hostlist import compress

MAX_SCONTROL_LINES = 20  # one line a node (its own evidence) up to this many, then one for all


def drain_reasons(result: Result) -> dict:
    """{host to drain: the reason Slurm keeps, naming the evidence}."""
    reasons = {}
    for host in result.drain():
        worst = [e for e in result.nodes[host] if e.verdict == "drain"]
        reasons[host] = f"commbench triage: {worst[0].text} [{worst[0].run}]" if worst else \
            "commbench triage: drain"
    return reasons


def scontrol_lines(reasons: dict) -> list[str]:
    """Ready `scontrol update NodeName=... State=DRAIN Reason="..."` lines (analysis.slurm) of
    {host: reason}: one a node with its own evidence, or one for all when there are many."""
    from analysis import slurm

    if len(reasons) > MAX_SCONTROL_LINES:
        return [slurm.drain_line(list(reasons), f"commbench triage: {len(reasons)} nodes below "
                                 "the fleet (evidence: commbench triage output)")]
    return [slurm.drain_line([host], reason) for host, reason in reasons.items()]


def apply_drain(reasons: dict) -> None:
    """Run the drain (analysis.slurm.drain, scontrol without a shell), only when asked."""
    from analysis import slurm

    hosts = list(reasons)
    if len(hosts) > MAX_SCONTROL_LINES:
        slurm.drain(hosts, f"commbench triage: {len(hosts)} nodes below the fleet", apply=True)
    else:
        for host, reason in reasons.items():
            slurm.drain([host], reason, apply=True)
    if hosts:
        print(f"drained {compress(hosts)} (scontrol; `sinfo -R` shows the reasons)")


def write_drain(path, hosts) -> None:
    from bench.core.safe_text import file_error

    if path:
        try:
            Path(path).write_text("".join(f"{h}\n" for h in hosts))
        except OSError as exc:
            raise file_error(f"--drain {path}", exc, "write it") from None
