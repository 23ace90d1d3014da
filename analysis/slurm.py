"""Drain lines for Slurm: the `scontrol update ... State=DRAIN` line for hosts and the
evidence against them, run only when asked.

    python -m analysis.slurm 'node[1-2]' --reason "pairs: 2.1x the median node" [--apply]

prints the line; with --apply it also runs it (scontrol must reach the controller and the
caller must be allowed to drain). Nothing is ever drained by default.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

from bench.core.errors import UsageError
from bench.core.hostlist import compress, expand_hostlist

# Host names as DNS and Slurm allow them: nothing the shell or scontrol's parser would read.
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Inside the line's double quotes the shell still expands these; scontrol needs none of them.
_SHELL_ACTIVE = str.maketrans({'"': "'", "\\": "/", "$": "S", "`": "'", "!": "."})
SCONTROL_TIMEOUT_S = 60


def drain_argv(hosts, reason: str) -> list[str]:
    """The scontrol command (argv, no shell) that drains `hosts` (names in any order,
    duplicates dropped) with `reason`. UsageError (one line) when there is no host, a name
    that is not a host name, or no reason (Slurm requires one to drain)."""
    hosts = list(dict.fromkeys(hosts))
    if not hosts:
        raise UsageError("nothing to drain: no hosts given")
    bad = [h for h in hosts if not isinstance(h, str) or not _HOST.fullmatch(h)]
    if bad:
        raise UsageError(f"cannot drain {bad[0]!r}: not a host name")
    reason = " ".join(str(reason or "").split()).translate(_SHELL_ACTIVE)  # one line
    if not reason:
        raise UsageError("a drain needs a reason (Slurm refuses to drain without one)")
    return ["scontrol", "update", f"NodeName={compress(hosts)}", "State=DRAIN", f"Reason={reason}"]


def drain_line(hosts, reason: str) -> str:
    """The drain as one line to paste into a shell:
    `scontrol update NodeName=node[1-2] State=DRAIN Reason="pairs: 2.1x the median node"`.
    The reason should name the evidence (what was measured, against what); characters the
    shell would expand inside double quotes are replaced, line breaks become spaces."""
    argv = drain_argv(hosts, reason)
    reason_text = argv[-1].split("=", 1)[1]
    return " ".join(argv[:-1]) + f' Reason="{reason_text}"'


def drain(hosts, reason: str, apply: bool = False, scontrol: str | None = None) -> str:
    """The drain line for `hosts`; runs it (scontrol, no shell) only when `apply` is true.
    Returns the line. With apply: UsageError (one line) when scontrol is missing or refuses
    (no controller, not allowed, unknown node), quoting what scontrol said."""
    argv = drain_argv(hosts, reason)
    line, nodes = drain_line(hosts, reason), argv[2].split("=", 1)[1]
    if not apply:
        return line
    scontrol = scontrol or shutil.which("scontrol")
    if scontrol is None:
        raise UsageError("--apply: scontrol not on PATH (no Slurm here); the drain line is: "
                         + line)
    try:
        r = subprocess.run([scontrol, *argv[1:]], capture_output=True, text=True, check=False,
                           timeout=SCONTROL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"scontrol did not drain {nodes}: {exc}") from None
    if r.returncode != 0:
        said = " ".join((r.stderr or r.stdout).split()) or f"exit status {r.returncode}"
        raise UsageError(f"scontrol did not drain {nodes}: {said}")
    return line


# the description of --help (not the docstring: python -OO strips docstrings)
DESCRIPTION = """Drain lists that Slurm takes: hosts and the evidence against them as one ready
`scontrol update NodeName=<hostlist> State=DRAIN Reason="..."` line, applied only when asked."""


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m analysis.slurm", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("hosts", help="hosts to drain, as a hostlist: node[1-2],gpu7")
    parser.add_argument("--reason", required=True, help="the evidence, e.g. 'pairs: 2.1x the "
                                                        "median node at 4 MiB'")
    parser.add_argument("--apply", action="store_true",
                        help="run the scontrol line (default: only print it)")
    args = parser.parse_args(argv)
    try:
        print(drain(expand_hostlist(args.hosts), args.reason, apply=args.apply))
    except UsageError as exc:
        print(f"commbench: error: {exc}", file=sys.stderr)
        return 2
    if args.apply:
        print(f"drained {args.hosts}: `sinfo -R` shows the reason", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
