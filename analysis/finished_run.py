"""A finished run read and checked for what `commbench run` prints at its end
(bench.end_of_run prints it): meta.json, the summary rows and the node section (the link map
and rank skew, analysis.links). The local launcher's process reads its ranks' run this way;
rank 0 under an outside launcher, which loads no pandas, runs this module in a process of its
own for the node section alone (`python -m analysis.finished_run RUN_DIR`)."""
from __future__ import annotations

import sys
from pathlib import Path

from analysis.meta_checks import check_meta, load_checked_meta
from analysis.run_frames import load_summary
from bench.core import rundir as fmt
from bench.core.errors import RunDirError
from bench.core.safe_text import path_text


def nodes_text(run_dir, meta: dict) -> str:
    """The node section: the link map and rank skew (analysis.links), every sample read and
    checked."""
    from analysis.links import describe
    from analysis.runsamples import RunSamples

    return describe(RunSamples(run_dir, meta), meta)


def checked_run(run_dir) -> tuple:
    """(meta, summary rows, the directory as shown): both files checked (analysis.meta_checks, analysis.csv_checks)."""
    meta = load_checked_meta(run_dir)
    return meta, load_summary(run_dir).to_dict("records"), path_text(run_dir)


def main(argv: list) -> int:
    """The node section of a run whose lock the calling process (rank 0, done writing) still
    holds: meta.json is checked as load_checked_meta checks it, less the lock."""
    run_dir = Path(argv[0])
    try:
        meta = fmt.load_meta(run_dir)
        check_meta(meta, run_dir / fmt.META)
        print(nodes_text(run_dir, meta))
    except RunDirError as exc:
        print(f"commbench: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
