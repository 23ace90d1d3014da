"""What of a run's meta.json `commbench compare` sets side by side: the settings and versions
that can change a time (named first where the sides differ) and the run-to-run noise a run
measured itself."""
from __future__ import annotations

import math


# What of meta.json can change a time, so a comparison names it first where the sides differ:
# (label, path into meta.json). Settings of the sampling, where and how the calls run, the
# libraries and versions, and the machine.
SETTINGS = [("commbench", ("commbench",)), ("ranks", ("nranks",)), ("nodes", ("nnodes",)),
            ("loop", ("method", "loop")), ("dtype", ("settings", "dtype")),
            ("device", ("settings", "device")), ("--cuda-graph", ("settings", "cuda_graph")),
            ("--timer", ("settings", "timer")), ("--sample-time", ("settings", "sample_time")),
            ("--ci-target", ("settings", "ci_target")),
            ("--min-samples", ("settings", "min_samples")),
            ("--max-samples", ("settings", "max_samples")), ("--budget", ("settings", "budget")),
            ("--repeats", ("settings", "repeats")), ("--launches", ("settings", "launches")),
            ("python", ("versions", "python")), ("numpy", ("versions", "numpy")),
            ("platform", ("versions", "platform")), ("hosts", ("hosts",))]
BACKEND_KEYS = ("library", "mpi4py", "torch", "nccl", "cuda", "device", "gloo")


def _setting(meta: dict, path) -> str:
    value: object = meta
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in sorted(value.items()))
    if isinstance(value, list):
        return ", ".join(sorted({str(v) for v in value}))
    return "–" if value is None else str(value)


def settings_of(meta: dict) -> dict:
    """{label: text} of what in one run's meta.json can change its times (SETTINGS, and each
    backend's library versions)."""
    out = {label: _setting(meta, path) for label, path in SETTINGS}
    for name, info in sorted((meta.get("backends") or {}).items()):
        for key in BACKEND_KEYS:
            if isinstance(info, dict) and key in info:
                out[f"{name} {key}"] = _setting(info, (key,))
    return out


def differing_settings(base_metas, new_metas) -> list:
    """'label: BASE vs NEW' for every setting or version (settings_of) that differs between
    the sides (several runs on a side: their values joined by ' / ')."""
    def side(metas):
        found: dict = {}
        for meta in metas:
            for label, text in settings_of(meta).items():
                found.setdefault(label, [])
                if text not in found[label]:
                    found[label].append(text)
        return {k: " / ".join(v) for k, v in found.items()}

    base, new = side(base_metas), side(new_metas)
    return [f"{label}: {base.get(label, '–')} vs {new.get(label, '–')}"
            for label in dict.fromkeys([*base, *new]) if base.get(label) != new.get(label)]


def measured_noise(meta: dict) -> float | None:
    """The run-to-run ratio a run's own noise calibration saw (meta.json -> noise -> pingpong
    -> max_over_min: the slowest over the fastest burst median of an 8 B ping-pong), or None
    when the run did not measure it (imports, `--no-noise`)."""
    ping = ((meta.get("noise") or {}).get("pingpong") or {}) if isinstance(meta.get("noise"), dict) else {}
    value = ping.get("max_over_min") if isinstance(ping, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and value >= 1:
        return float(value)
    return None
