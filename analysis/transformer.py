"""A transformer's dimensions and parameters: the presets (transformer_presets.json) or a
JSON file of one model, checked; parameters counted from the dimensions. Its layout over ranks
is analysis.transformer_layout, the communication of a training step
analysis.transformer_schedule.

Parameters are counted from the dimensions: attention (q, k, v, o projections: 2·h·heads·d +
2·h·kv_heads·d, d = head dimension), MLP (3·h·ffn gated, 2·h·ffn not), experts (experts × MLP)
and router (h × experts), two norms of h per layer and a final one, the embedding V·h and the
output layer V·h (unless tied). No biases.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.core.errors import UsageError

PRESETS = Path(__file__).with_name("transformer_presets.json")


@dataclass(frozen=True)
class Model:
    name: str
    layers: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    vocab: int
    head_dim: int = 0          # 0: hidden / heads
    experts: int = 0           # 0: dense
    top_k: int = 0
    moe_ffn: int = 0           # an expert's ffn (0: ffn)
    moe_layers: tuple = ()     # indices of the MoE layers
    gated: bool = True         # SwiGLU-style MLP: 3 matrices (else 2)
    tied_embeddings: bool = False
    published_params: float = 0.0
    source: str = ""

    @property
    def d(self) -> int:
        return self.head_dim or self.hidden // self.heads

    def attention(self) -> int:
        """q, k, v and o projections of one layer."""
        return 2 * self.hidden * self.heads * self.d + 2 * self.hidden * self.kv_heads * self.d

    def mlp(self, ffn: int | None = None) -> int:
        return (3 if self.gated else 2) * self.hidden * (ffn or self.ffn)

    def is_moe(self, layer: int) -> bool:
        return layer in self.moe_layers


_INTS = ("layers", "hidden", "ffn", "heads", "kv_heads", "vocab")
_OPTIONAL = {"name": str, "head_dim": int, "experts": int, "top_k": int, "moe_ffn": int,
             "moe_layers": object, "gated": bool, "tied_embeddings": bool,
             "published_params": float, "source": str}


def presets() -> dict:
    data = json.loads(PRESETS.read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


def load_model(spec: str) -> Model:
    """A preset by name (any case), or a JSON file of one model."""
    path = Path(spec)
    if spec.lower().endswith(".json") or path.is_file():
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise UsageError(f"--model {spec}: cannot read it ({exc.strerror or exc})") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise UsageError(f"--model {spec}: not JSON ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise UsageError(f"--model {spec}: expected a JSON object of the model's dimensions")
        return model_from_dict(data.get("name") or path.stem, data, f"--model {spec}")
    known = presets()
    found = {k.lower(): k for k in known}.get(spec.lower())
    if found is None:
        raise UsageError(f"--model {spec!r}: no such preset or file; presets: {', '.join(known)}")
    return model_from_dict(found, known[found], f"preset {found}")


def model_from_dict(name: str, data: dict, where: str) -> Model:
    """A Model from JSON keys; every bad key or value is one UsageError naming it."""
    unknown = [k for k in data if k not in _INTS and k not in _OPTIONAL]
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r}; known: "
                         f"{', '.join(_INTS + tuple(_OPTIONAL))}")
    missing = [k for k in _INTS if k not in data]
    if missing:
        raise UsageError(f"{where}: missing {', '.join(missing)}")

    def integer(key, lo=1):
        v = data.get(key, 0 if lo == 0 else None)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise UsageError(f"{where}: {key} must be an integer ≥ {lo}, got {v!r}")
        return v

    dims = {k: integer(k) for k in _INTS}
    extra = {k: integer(k, 0) for k in ("head_dim", "experts", "top_k", "moe_ffn")}
    for key in ("gated", "tied_embeddings"):
        if key in data and not isinstance(data[key], bool):
            raise UsageError(f"{where}: {key} must be true or false, got {data[key]!r}")
    published = data.get("published_params", 0.0)
    if isinstance(published, bool) or not isinstance(published, (int, float)) or published < 0:
        raise UsageError(f"{where}: published_params must be a number ≥ 0, got {published!r}")
    h, a, k = dims["hidden"], dims["heads"], dims["kv_heads"]
    if a % k:
        raise UsageError(f"{where}: heads {a} is not a multiple of kv_heads {k}")
    if not extra["head_dim"] and h % a:
        raise UsageError(f"{where}: hidden {h} is not a multiple of heads {a}: give head_dim")
    experts, top_k = extra["experts"], extra["top_k"]
    moe_layers: tuple = ()
    if experts:
        if not 1 <= top_k <= experts:
            raise UsageError(f"{where}: top_k must be between 1 and experts ({experts}), got {top_k}")
        moe_layers = _moe_layers(data.get("moe_layers", 1), dims["layers"], where)
    elif top_k or "moe_layers" in data:
        raise UsageError(f"{where}: top_k and moe_layers need experts")
    return Model(name=str(data.get("name") or name), **dims, **extra, moe_layers=moe_layers,
                 gated=data.get("gated", True), tied_embeddings=data.get("tied_embeddings", False),
                 published_params=float(published), source=str(data.get("source", "")))


def _moe_layers(value, layers: int, where: str) -> tuple:
    """moe_layers: "all", N (every N-th layer from the first, as Megatron's --moe-layer-freq)
    or a list of layer indices (from 0)."""
    if value == "all":
        return tuple(range(layers))
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return tuple(range(0, layers, value))
    if isinstance(value, list) and value and all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < layers for i in value):
        return tuple(sorted(set(value)))
    raise UsageError(f"{where}: moe_layers must be \"all\", a step N ≥ 1 or a list of layer "
                     f"indices 0..{layers - 1}, got {value!r}")


def parameter_counts(model: Model) -> dict:
    """Parameters by part (attention, mlp, experts, router, norms, embedding, output), the
    total, and the parameters active per token (top_k of the experts)."""
    moe = len(model.moe_layers)
    dense = model.layers - moe
    h, v = model.hidden, model.vocab
    expert = model.mlp(model.moe_ffn or model.ffn)
    parts = {"attention": model.layers * model.attention(), "mlp": dense * model.mlp(),
             "experts": moe * model.experts * expert, "router": moe * model.experts * h,
             "norms": (2 * model.layers + 1) * h, "embedding": v * h,
             "output": 0 if model.tied_embeddings else v * h}
    total = sum(parts.values())
    active = total - moe * (model.experts - model.top_k) * expert
    return {**parts, "total": total, "active": active}
