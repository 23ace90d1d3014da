"""meta.json of a run directory as analysis reads it: bench.core.rundir.load_meta (a
directory, the file, JSON, an object of this schema), then the types of the fields analysis
uses (`check_meta`), so that a damaged or hostile file is one line naming the field, not a
traceback later. RunDirError of one line (`commbench` prints it and exits 2)."""
from __future__ import annotations

import math
from pathlib import Path

from bench.core import rundir as fmt
from bench.core.run_lock import in_progress
from bench.core.errors import RunDirError
from bench.core.runmeta import CONTENTION, NOISE
from bench.core.safe_text import has_control, one_line, path_text

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
    if in_progress(run_dir):  # half a run read as a whole one would mislead every verb
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
    for field, kind in (("launches", list), ("ops", dict), (CONTENTION, dict), (NOISE, dict)):
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
    # the sections of the machine that `commbench run` and the report print in one line
    # (bench.core.runmeta.describe_contention, describe_noise): what those lines read
    def number(v) -> bool:
        return isinstance(v, (int, float))

    def malformed(section, where, why):
        bad(section, f"malformed ({where}: {why})")

    contention = meta.get(CONTENTION)
    if contention:
        hosts_c = contention.get("hosts", {})
        if not isinstance(hosts_c, dict):
            malformed(CONTENTION, "hosts", "expected an object")
        for host, h in hosts_c.items():
            where = f"hosts.{one_line(host)[:60]}"
            if not isinstance(h, dict):
                malformed(CONTENTION, where, "expected an object")
            if "other_share" not in h:
                continue
            for key in ("other_share", "steal_share"):
                if not number(h.get(key)):
                    malformed(CONTENTION, f"{where}.{key}", "expected a number")
            for key in ("contended", "cpus"):
                if key not in h:
                    malformed(CONTENTION, f"{where}.{key}", "missing")
    noise = meta.get(NOISE)
    if noise:
        timer = noise.get("timer")
        if not (isinstance(timer, dict) and number(timer.get("measured_resolution_s"))):
            malformed(NOISE, "timer.measured_resolution_s", "expected a number")
        jitter = noise.get("jitter_per_rank")
        if not (isinstance(jitter, list) and jitter):
            malformed(NOISE, "jitter_per_rank", "expected a list of ranks' records")
        for rank, j in enumerate(jitter):
            for key in ("p99_over_median", "interrupted_share", "quantum_s"):
                if not (isinstance(j, dict) and number(j.get(key))):
                    malformed(NOISE, f"jitter_per_rank[{rank}].{key}", "expected a number")
        pingpong = noise.get("pingpong")
        if pingpong:
            if not isinstance(pingpong, dict):
                malformed(NOISE, "pingpong", "expected an object")
            medians = pingpong.get("burst_medians_s")
            if not (isinstance(medians, list) and medians and all(map(number, medians))):
                malformed(NOISE, "pingpong.burst_medians_s", "expected a list of numbers")
            if not number(pingpong.get("max_over_min")):
                malformed(NOISE, "pingpong.max_over_min", "expected a number")
