"""What the tools' names mean in commbench: their dtype spellings, and the op facts the
parsers take from bench.ops (which op a tool's name means, S from the size it prints).
"""
from __future__ import annotations

from analysis.known_ops import FOREIGN_OPS, known_op
from bench.ops import OPS


# ---------------------------------------------------------------- dtypes
# the tools' spellings (nccl-tests' type column, MPI datatype names of OSU and IMB)
DTYPES = {
    "float": "float32", "double": "float64", "half": "float16", "bfloat16": "bfloat16",
    "int": "int32", "int32": "int32", "uint32": "uint32", "int64": "int64", "uint64": "uint64",
    "int8": "int8", "uint8": "uint8", "char": "int8", "byte": "uint8", "mpi_char": "int8",
    "mpi_byte": "uint8", "mpi_int": "int32", "mpi_float": "float32", "mpi_double": "float64",
    "fp8_e4m3": "float8_e4m3", "fp8_e5m2": "float8_e5m2",
}
ITEMSIZE = {"float64": 8, "int64": 8, "uint64": 8, "float32": 4, "int32": 4, "uint32": 4,
            "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1}


def canon_dtype(name: str) -> str:
    key = name.strip().rstrip(".").lower()
    return DTYPES.get(key, key or "uint8")


def element_count(nbytes_tool: int, dtype: str) -> float:
    """Elements in the size a tool prints; NaN for a dtype of unknown size."""
    size = ITEMSIZE.get(dtype)
    return float(nbytes_tool // size) if size else float("nan")


# ---------------------------------------------------------------- ops (from bench.ops)
def op_named(name: str):
    """The known op (measured or foreign) of exactly this name, or None. Tools' names are
    mapped before (ops_named_by); other spellings are not guessed, so a name no op has keeps
    no facts (its S is the printed size, its bus factor unknown)."""
    op = known_op(name)
    return op if op is not None and op.name == name else None


def ops_named_by(tool: str) -> dict:
    """{the tool's name for an op: commbench op name}, from the ops' tool_names (measured,
    then foreign; an op that inherits its parent's names does not take them over)."""
    names: dict = {}
    for op in [*OPS.values(), *FOREIGN_OPS.values()]:
        if tool in op.tool_names:
            names.setdefault(op.tool_names[tool], op.name)
    return names


def s_of_tool_size(op: str, size_tool: int, nranks: int) -> int:
    """commbench's S from the size a tool prints (one message, or one rank's block)."""
    known = op_named(op)
    return known.s_of_tool_size(size_tool, nranks) if known else size_tool


def msgs_per_op(op: str, nranks: int) -> float:
    known = op_named(op)
    return known.msgs_per_op(nranks) if known else 1.0
