"""Start a benchmark script again on local torch ranks (commbench's own launcher), with this
checkout first on PYTHONPATH. Not collected by pytest."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_self(script: str, argv: list, n: int) -> int:
    """Run `script` with `argv` on n ranks; the job's exit status (a failure is printed)."""
    sys.path.insert(0, str(ROOT))
    from bench.spawn import run_ranks, torch_local_envs
    from bench.world import free_port

    envs = torch_local_envs(n, free_port("127.0.0.1"))
    for env in envs:
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    rc, message = run_ranks([sys.executable, str(Path(script).resolve()), *argv], envs)
    if message:
        print(message, file=sys.stderr)
    return rc
