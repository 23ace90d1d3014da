"""meta.json of a run directory as analysis reads it: bench.core.rundir.load_meta (a
directory, the file, JSON, an object of this schema), then the types of the fields analysis
uses (`check_meta`), so that a damaged or hostile file is one line naming the field, not a
traceback later. RunDirError of one line (`commbench` prints it and exits 2)."""
from __future__ import annotations

import math
from pathlib import Path

from analysis.safe_text import has_control, one_line, path_text
from bench.core import rundir as fmt
from bench.core.errors import RunDirError

MAX_META_DEPTH = 64  # nesting of meta.json's JSON; commbench writes 4 or 5 levels


def load_checked_meta(run_dir) -> dict:
    """meta.json of a run directory (bench.core.rundir.load_meta: a directory, the file, JSON,
    an object of this schema), then the types of the fields analysis reads (`check_meta`)."""
    run_dir = Path(run_dir)
    path = run_dir / fmt.META
    try:
        str(run_dir).encode("utf-8")
    except UnicodeEncodeError:  # what is read from it would be shown and written under it
        name = str(run_dir).encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
        raise RunDirError(f"{one_line(name)}: the name holds bytes that are not UTF-8, which "
                          "reports and tables cannot carry; rename it (commbench run refuses "
                          "such names)") from None
    if run_dir.is_dir() and (path.exists() or path.is_symlink()) and not (path.is_file() or path.is_dir()):
        # a FIFO or a device would block or never end; a dangling link is no file either
        raise RunDirError(f"{path_text(path)}: not a regular file")
    try:
        meta = fmt.load_meta(run_dir)
    except RunDirError as exc:
        raise RunDirError(one_line(exc)) from None
    except RecursionError:
        raise RunDirError(f"{path_text(path)}: JSON nested too deeply") from None
    except ValueError as exc:  # e.g. a number too long to convert
        raise RunDirError(f"{path_text(path)}: unreadable JSON ({one_line(exc)})") from None
    check_meta(meta, path)
    if fmt.in_progress(run_dir):  # half a run read as a whole one would mislead every verb
        raise RunDirError(f"{path_text(run_dir)}: a commbench run is still writing it (its lock "
                          f"is held; status {one_line(meta.get('status'))}): wait until it ends")
    return meta


def _depth(value) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_META_DEPTH:
            break
        if isinstance(v, dict):
            stack += [(x, d + 1) for x in v.values()]
        elif isinstance(v, list):
            stack += [(x, d + 1) for x in v]
    return deepest


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_meta(meta: dict, path) -> None:
    """The fields of meta.json that analysis uses have the types results/README.md gives
    them (absent or null is fine: imported and older runs lack many). RunDirError else."""
    def bad(field, why):
        raise RunDirError(f"{path_text(path)}: {field}: {why}")

    if _depth(meta) > MAX_META_DEPTH:
        bad("JSON", f"nested deeper than {MAX_META_DEPTH} levels")
    for field in ("run_id", "status", "source", "commbench"):
        v = meta.get(field)
        if v is not None and not isinstance(v, str):
            bad(field, f"expected a string, found {type(v).__name__}")
        if isinstance(v, str) and has_control(v):
            bad(field, "holds a control character")
    for field in ("nranks", "nnodes"):
        v = meta.get(field)
        if v is not None and not (is_int(v) and 1 <= v <= 1 << 24):
            bad(field, f"expected a positive integer, found {one_line(repr(v))[:60]}")
    hosts = meta.get("hosts")
    if hosts is not None:
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            bad("hosts", "expected a list of host names")
        if any(has_control(h) for h in hosts):
            bad("hosts", "a host name holds a control character")
    for field, kind in (("launches", list), ("ops", dict), ("contention", dict), ("noise", dict)):
        v = meta.get(field)
        if v is not None and not isinstance(v, kind):
            bad(field, f"expected {'a list' if kind is list else 'an object'}, "
                       f"found {type(v).__name__}")
    backend = meta.get("backend")
    if backend is not None and not isinstance(backend, (str, dict)):
        bad("backend", f"expected an object or a string, found {type(backend).__name__}")
    for op, info in (meta.get("ops") or {}).items():
        if info is not None and not isinstance(info, dict):
            bad(f"ops.{one_line(op)[:60]}", f"expected an object, found {type(info).__name__}")
        for key in ("delay_s0", "delay_Bps"):
            v = (info or {}).get(key)
            if v is not None and not (_is_number(v) and v >= 0):
                bad(f"ops.{one_line(op)[:60]}.{key}", "expected a finite number ≥ 0")
    # the summaries of the machine that `commbench run` and the report print
    if meta.get("contention"):
        try:
            from bench import contention

            hosts_c = meta["contention"].get("hosts", {})
            any(h.get("contended") for h in hosts_c.values())
            contention.describe(meta["contention"])
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
            bad("contention", f"malformed ({type(exc).__name__}: {one_line(exc)[:80]})")
    if meta.get("noise"):
        try:
            from bench import noise

            noise.describe(meta["noise"])
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
            bad("noise", f"malformed ({type(exc).__name__}: {one_line(exc)[:80]})")
