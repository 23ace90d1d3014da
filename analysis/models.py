"""Cost models of collective algorithms (Thakur, Rabenseifner & Gropp 2005; see
../shared/reference.md), as a registry: (op, algorithm) -> coefficients of (α, β, γ).

Every model is linear in its parameters, t(p, n) = a(p)·α + b(p, n)·β + c(p, n)·γ, so fitting
one is one (non-negative, weighted) linear least squares over the design matrix [a, b, c].
Adding an op or an algorithm is one decorated function; nothing else changes.

α: seconds per message (latency), β: seconds per byte moved, γ: seconds per byte reduced.

Mapping of S (commbench's `nbytes`, results/README.md) to the n of the formulas: in every model
below n = S. That is the formulas' own convention: for allreduce, broadcast and reduce n is the
array on each rank; for allgather and reduce-scatter n is the whole gathered / scattered buffer
(per-rank count × p), which is S; for alltoall n is what one rank sends in total, which is S.

The formulas assume p is a power of two. For other p, lg p is rounded up (⌈lg p⌉): the
recursive algorithms of MPICH and Open MPI add a fold-in step for the ranks beyond the largest
power of two, which costs about one more round.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from bench.ops import canonical_name  # an op's other spellings live with the op

# (op, algorithm) -> function (p, n) -> (a, b, c), arrays broadcast from p and n
_MODELS: dict[tuple[str, str], Callable] = {}
_DOCS: dict[tuple[str, str], str] = {}

PARAMS = ("alpha_s", "beta_s_per_byte", "gamma_s_per_byte")


def lg(p):
    """Rounds of a doubling / halving algorithm: ⌈log2 p⌉ (0 for one rank)."""
    return np.ceil(np.log2(np.maximum(np.asarray(p, dtype=float), 1.0)))


def model(op: str, name: str, doc: str):
    """Register the cost formula of algorithm `name` for `op`."""
    def register(fn):
        _MODELS[(op, name)] = fn
        _DOCS[(op, name)] = doc
        return fn
    return register


def algorithms(op: str) -> list[str]:
    """The algorithm names registered for op (canonical or alias spelling)."""
    op = canonical_name(op)
    return [name for (o, name) in _MODELS if o == op]


def describe(op: str, name: str) -> str:
    return _DOCS[(canonical_name(op), name)]


def design_matrix(op: str, name: str, p, n) -> np.ndarray:
    """Columns (α, β, γ) coefficients, one row per (p, n) point."""
    p, n = np.broadcast_arrays(np.atleast_1d(np.asarray(p, dtype=float)),
                               np.atleast_1d(np.asarray(n, dtype=float)))
    a, b, c = _MODELS[(canonical_name(op), name)](p, n)
    return np.column_stack([np.broadcast_to(a, p.shape), np.broadcast_to(b, p.shape),
                            np.broadcast_to(c, p.shape)]).astype(float)


def predict(op: str, name: str, p, n, params) -> np.ndarray:
    """t(p, n) = design · (α, β, γ); params is a mapping or a 3-sequence (missing γ = 0)."""
    if isinstance(params, dict):
        params = [params.get(k, 0.0) for k in PARAMS]
        params = [0.0 if (v is None or not np.isfinite(v)) else v for v in params]
    t = design_matrix(op, name, p, n) @ np.asarray(params, dtype=float)
    return t.reshape(np.broadcast(np.asarray(p), np.asarray(n)).shape)  # scalar in, scalar out


def frac(p):
    return (p - 1.0) / p


# ---- allreduce (n = bytes of the array on each rank) --------------------------------------
@model("allreduce", "recursive_doubling", "lg p·α + n lg p·(β+γ)")
def _(p, n):
    return lg(p), n * lg(p), n * lg(p)


@model("allreduce", "rabenseifner",
       "2 lg p·α + 2n(p−1)/p·β + n(p−1)/p·γ (reduce-scatter by halving + allgather by doubling)")
def _(p, n):
    return 2 * lg(p), 2 * n * frac(p), n * frac(p)


@model("allreduce", "ring", "2(p−1)α + 2n(p−1)/p·β + n(p−1)/p·γ")
def _(p, n):
    return 2 * (p - 1), 2 * n * frac(p), n * frac(p)


# binomial reduce + binomial bcast, 2 lg p·(α + nβ) + n lg p·γ, is recursive doubling's
# formula times two: the same fit, so it is not a separate model.


# ---- allgather (n = S = the whole gathered buffer) -----------------------------------------
@model("allgather", "recursive_doubling", "lg p·α + n(p−1)/p·β (Bruck's allgather costs the same)")
def _(p, n):
    return lg(p), n * frac(p), 0 * n


@model("allgather", "ring", "(p−1)α + n(p−1)/p·β")
def _(p, n):
    return p - 1, n * frac(p), 0 * n


# ---- reduce-scatter (n = S = the whole input buffer) ---------------------------------------
@model("reduce_scatter", "ring", "(p−1)α + n(p−1)/p·(β+γ) (pairwise costs the same)")
def _(p, n):
    return p - 1, n * frac(p), n * frac(p)


@model("reduce_scatter", "recursive_halving", "lg p·α + n(p−1)/p·(β+γ)")
def _(p, n):
    return lg(p), n * frac(p), n * frac(p)


# ---- alltoall (n = S = bytes one rank sends in total) ---------------------------------------
@model("alltoall", "pairwise", "(p−1)α + nβ")
def _(p, n):
    return p - 1, n, 0 * n


@model("alltoall", "bruck", "lg p·α + (n/2) lg p·β")
def _(p, n):
    return lg(p), n / 2 * lg(p), 0 * n


# ---- broadcast and reduce (n = bytes of the array) ---------------------------------------------
@model("broadcast", "binomial", "lg p·(α + nβ)")
def _(p, n):
    return lg(p), n * lg(p), 0 * n


@model("broadcast", "scatter_allgather", "(lg p + p − 1)α + 2n(p−1)/p·β (scatter + ring allgather)")
def _(p, n):
    return lg(p) + p - 1, 2 * n * frac(p), 0 * n


@model("reduce", "binomial", "lg p·(α + nβ + nγ)")
def _(p, n):
    return lg(p), n * lg(p), n * lg(p)


@model("reduce", "rabenseifner", "2 lg p·α + 2n(p−1)/p·β + n(p−1)/p·γ (reduce-scatter + gather)")
def _(p, n):
    return 2 * lg(p), 2 * n * frac(p), n * frac(p)


# ---- barrier (no payload) -------------------------------------------------------------------
@model("barrier", "dissemination", "lg p·α")
def _(p, n):
    return lg(p), 0 * n, 0 * n


@model("barrier", "linear", "2(p−1)α (gather to a root and release)")
def _(p, n):
    return 2 * (p - 1), 0 * n, 0 * n
