"""The statistics behind each verdict of `commbench compare`: a case's test at its unit of
replication (per-(run, round) medians, else raw samples), the one-sided Mann-Whitney p values,
the distribution-free interval of the ratio NEW / BASE, and the verdict of unreplicated cases
from neighbouring sizes (compare's EPILOG says why)."""
from __future__ import annotations

import math

# numpy and scipy are imported inside the functions: building the CLI parser imports
# `commbench compare`, which imports this module.

VERDICTS = ("slower", "not significant", "faster")  # the order of the closing count
CONFIDENCE = 0.95
NEIGHBOURS = 3        # consecutive sizes that must agree for an unreplicated verdict


def unit_values(times) -> tuple:
    """The values to test for one case of one side: per-(run, round) medians when there are
    at least 2 such units, else the raw sample times."""
    rounds = times.groupby(["run", "round"])["time_s"].median().to_numpy()
    if rounds.size >= 2:
        return rounds, "rounds"
    return times["time_s"].to_numpy(), "samples"


def one_sided_p(new, base, alternative: str) -> float:
    from scipy.stats import mannwhitneyu

    p = float(mannwhitneyu(new, base, alternative=alternative).pvalue)
    return p if p == p else 1.0  # all values tied: no evidence either way


def smallest_p(n1: int, n2: int) -> float:
    """The smallest one-sided p an exact Mann-Whitney test can give for n1 vs n2 values."""
    try:
        return 1.0 / math.comb(n1 + n2, n1)
    except OverflowError:  # thousands of samples: as good as zero
        return 0.0


def ratio_interval(base, new, confidence=CONFIDENCE) -> tuple[float, float]:
    """Distribution-free interval of the typical ratio NEW / BASE: the order statistics of all
    pairwise log ratios that the Mann-Whitney test itself implies (Moses' interval for the
    Hodges-Lehmann shift, on log times). Robust to outlying rounds and deterministic."""
    import numpy as np
    from scipy.stats import norm

    base, new = _thin(np.log(base)), _thin(np.log(new))
    diffs = np.sort(np.subtract.outer(new, base).ravel())
    n1, n2 = new.size, base.size
    # the count of pairwise differences cut off at each end (normal approximation of U)
    k = n1 * n2 / 2 - norm.ppf(0.5 + confidence / 2) * math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    cut = max(0, int(math.floor(k)) - 1)
    return float(np.exp(diffs[cut])), float(np.exp(diffs[-1 - cut]))


def _thin(x, most=1000):
    """At most `most` evenly spaced quantiles: thousands of raw samples keep the pairwise
    differences cheap (the interval then is that of `most` values, slightly wider)."""
    import numpy as np

    if x.size <= most:
        return x
    return np.quantile(x, (np.arange(most) + 0.5) / most)


def verdict(ratio: float, p_slower: float, p_faster: float, factor: float, alpha: float) -> str:
    if ratio > factor and p_slower < alpha:
        return "slower"
    if ratio < 1 / factor and p_faster < alpha:
        return "faster"
    return "not significant"


def compare_case(base_times, new_times, factor, alpha) -> dict:
    import numpy as np

    base, base_unit = unit_values(base_times)
    new, new_unit = unit_values(new_times)
    unit = "rounds" if base_unit == new_unit == "rounds" else "samples"
    if unit == "samples":  # both sides must be of the same kind
        base, new = base_times["time_s"].to_numpy(), new_times["time_s"].to_numpy()
    base_med, new_med = float(np.median(base)), float(np.median(new))
    ratio = new_med / base_med
    # the null hypotheses are shifted by the factor: "slower" means worse than the factor
    p_slower = one_sided_p(new, base * factor, "greater")
    p_faster = one_sided_p(new, base / factor, "less")
    lo, hi = ratio_interval(base, new)
    return {
        "unit": unit, "n_base": int(base.size), "n_new": int(new.size),
        "base_median_s": base_med, "new_median_s": new_med,
        "ratio": ratio, "ratio_ci_low": lo, "ratio_ci_high": hi,
        "p_value": p_slower if ratio >= 1 else p_faster,
        "verdict": verdict(ratio, p_slower, p_faster, factor, alpha),
        "_p": (p_slower, p_faster),  # for the unreplicated pass; dropped before output
    }


def unreplicated(rows, factor: float, alpha: float, noise: float) -> None:
    """Verdicts of the unreplicated rows (unit 'samples'; compare's EPILOG), in place: each
    gets `evidence` {ratio, agree, of, sizes, threshold}: the window of NEIGHBOURS consecutive
    sizes of its series that holds it and agrees best with the direction of its ratio."""
    import numpy as np

    series: dict = {}
    for row in rows:
        series.setdefault((row["backend"], row["op"], row["nranks"], row["split"]), []).append(row)
    threshold = factor * noise
    for members in series.values():
        members.sort(key=lambda r: r["nbytes"])
        if not any(r["unit"] == "samples" for r in members):
            continue
        ratios = np.array([r["ratio"] for r in members])
        # the rank test counts where it can reach alpha (several samples on both sides)
        decides = np.array([smallest_p(r["n_base"], r["n_new"]) < alpha for r in members])
        p_slower = np.array([r["_p"][0] for r in members])
        p_faster = np.array([r["_p"][1] for r in members])
        beyond = {"slower": (ratios > threshold) & (~decides | (p_slower < alpha)),
                  "faster": (ratios < 1 / threshold) & (~decides | (p_faster < alpha))}
        n = len(members)
        for i, row in enumerate(members):
            if row["unit"] != "samples":
                continue
            direction = "slower" if row["ratio"] >= 1 else "faster"
            # the windows of NEIGHBOURS sizes that hold case i; the best agreeing one wins,
            # ties going to the one centred on i
            centre = min(max(i - NEIGHBOURS // 2, 0), max(n - NEIGHBOURS, 0))
            starts = range(max(0, i - NEIGHBOURS + 1), min(i, n - NEIGHBOURS) + 1)
            windows = [slice(s, s + NEIGHBOURS) for s in starts] or [slice(0, n)]
            best = max(windows, key=lambda w: (int(beyond[direction][w].sum()),
                                               -abs(w.start - centre)))
            agree = int(beyond[direction][best].sum())
            row["evidence"] = {
                "kind": "unreplicated", "ratio": float(np.median(ratios[best])), "agree": agree,
                "of": NEIGHBOURS, "sizes": [members[j]["nbytes"] for j in range(n)[best]],
                "threshold": threshold if direction == "slower" else 1 / threshold}
            whole = n >= NEIGHBOURS and agree == NEIGHBOURS and beyond[direction][i]
            row["verdict"] = direction if whole else "not significant"
