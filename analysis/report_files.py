"""Where a report's files go: the output directory, checked writable before any figure is
drawn, and each figure written under a safe, unique name, never through a planted link."""
from __future__ import annotations

import os
from pathlib import Path

from analysis.figures import safe_name, write_file
from bench.core.safe_text import file_error, path_text
from bench.core.errors import RunDirError, UsageError


def prepare_out_dir(out_dir: Path | None, default: Path) -> Path:
    """The directory the report goes to, created and known to be writable before any figure
    is drawn: --out DIR as given, else RUN_DIR/report, which must not be a link planted in the
    run directory (the report would land wherever it points). RunDirError (one line naming
    the directory) when it cannot be written, e.g. a read-only run directory."""
    hint = "" if out_dir else "; give --out DIR to write the report elsewhere"
    path = out_dir or default
    if out_dir is None and path.is_symlink():
        raise RunDirError(f"{path_text(path)}: a symbolic link in the run directory, not followed"
                          f"{hint}")
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path_text(path)}: exists and is not a directory")
    probe = path / f".commbench-probe{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        write_file(probe, b"")
        probe.unlink()
    except OSError as exc:
        raise file_error(path, exc, "write the report there", hint) from None
    return path


def save_png(out_dir: Path, pngs: list, parts, png: bytes) -> str:
    """Write one figure into out_dir under a name made of parts (names from the runs,
    sanitised and unique: analysis.figures.safe_name), never through a planted link; its
    name is added to pngs. RunDirError naming the file when it cannot be written."""
    name = safe_name(*parts, used=set(pngs))
    try:
        write_file(out_dir / name, png)
    except OSError as exc:
        raise file_error(out_dir / name, exc, "write it") from None
    pngs.append(name)
    return name
