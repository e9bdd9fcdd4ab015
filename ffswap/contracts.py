"""I/O contracts: what tensors an adapter feeds a model and reads back.

A contract is plain data so a model can be checked against it *before* an inference
session is built (building one is the expensive, memory-hungry step, and for a wrong
model it fails with an opaque onnxruntime error or, worse, runs and gives garbage).
The "actual" side uses the same format the model store's manifest records per ONNX
file: ``{"name": str, "shape": [int | str | None, ...], "dtype": "float32"}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Dim = int | str | None
"""A dimension: a fixed size, or a symbolic name / ``None`` for a dynamic one."""

IoSpec = Mapping[str, Any]
"""One tensor as the manifest records it: keys ``name``, ``shape``, ``dtype``."""

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(bool)": "bool",
}


@dataclass(frozen=True)
class TensorContract:
    """One tensor an adapter's contract requires (what a model file declares is
    ffstore.onnxinfo's ``TensorInfo``). A ``None`` or string dim means "any size";
    a ``None`` shape means any shape (FaceFusion reshapes that output itself)."""

    name: str
    shape: tuple[Dim, ...] | None
    dtype: str = "float32"


@dataclass(frozen=True)
class Contract:
    """The full I/O an adapter relies on. Extra *inputs* are refused, because the
    adapter would not feed them.

    Inputs are always matched by name (FaceFusion feeds them by name). Outputs are
    matched by name, or, with ``outputs_by_position``, by their order in the graph,
    as FaceFusion reads them (``session.run(None, ...)``: its models' output names
    are whatever their exporters chose); the names are then only labels.
    ``max_outputs`` is set where FaceFusion's code unpacks the output list and so
    breaks on extra outputs (yoloface's single output, 2dfan4's two)."""

    name: str
    inputs: tuple[TensorContract, ...]
    outputs: tuple[TensorContract, ...]
    outputs_by_position: bool = False
    max_outputs: int | None = None


def _is_fixed(dim: Dim) -> bool:
    return isinstance(dim, int) and dim > 0


def _format_shape(shape: Sequence[Dim]) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def _check_tensor(label: str, expected: TensorContract, actual: IoSpec) -> list[str]:
    """Differences of one tensor; `label` says which (``input 'target'``)."""
    differences: list[str] = []
    actual_dtype = str(actual.get("dtype"))
    if actual_dtype != expected.dtype:
        differences.append(f"{label}: dtype is {actual_dtype}, expected {expected.dtype}")
    if expected.shape is None:
        return differences
    actual_shape = list(actual.get("shape") or [])
    if len(actual_shape) != len(expected.shape):
        differences.append(
            f"{label}: shape is {_format_shape(actual_shape)}"
            f" (rank {len(actual_shape)}), expected {_format_shape(expected.shape)}"
            f" (rank {len(expected.shape)})"
        )
        return differences
    # A dynamic actual dim accepts whatever size the adapter feeds, so only two fixed
    # sizes that disagree are a difference.
    mismatched = [
        axis
        for axis, (want, have) in enumerate(zip(expected.shape, actual_shape, strict=True))
        if _is_fixed(want) and _is_fixed(have) and want != have
    ]
    if mismatched:
        differences.append(
            f"{label}: shape is {_format_shape(actual_shape)}, expected"
            f" {_format_shape(expected.shape)} (axis {', '.join(map(str, mismatched))} differs)"
        )
    return differences


def _check_positional(expected: Contract, actual_outputs: Sequence[IoSpec]) -> list[str]:
    count, wanted = len(actual_outputs), len(expected.outputs)
    if count < wanted or (expected.max_outputs is not None and count > expected.max_outputs):
        if expected.max_outputs is None:
            allowed = f"at least {wanted}"
        elif expected.max_outputs == wanted:
            allowed = str(wanted)
        else:
            allowed = f"{wanted} to {expected.max_outputs}"
        return [f"the model has {count} outputs, expected {allowed} "
                f"({', '.join(spec.name for spec in expected.outputs)}, in this order)"]
    return [difference
            for position, (spec, actual) in enumerate(zip(expected.outputs, actual_outputs,
                                                          strict=False))
            for difference in _check_tensor(f"output {position} ({spec.name})", spec, actual)]


def check_contract(
    expected: Contract, actual_inputs: Sequence[IoSpec], actual_outputs: Sequence[IoSpec]
) -> list[str]:
    """Return human-readable differences between a contract and a model's I/O.

    An empty list means the model fits. Every difference is listed (not just the
    first) so one error message tells the publisher everything to fix.
    """
    differences: list[str] = []
    inputs = {str(spec["name"]): spec for spec in actual_inputs}
    outputs = {str(spec["name"]): spec for spec in actual_outputs}
    checks: list[tuple[str, tuple[TensorContract, ...], Mapping[str, IoSpec]]] = [
        ("input", expected.inputs, inputs)]
    if not expected.outputs_by_position:
        checks.append(("output", expected.outputs, outputs))
    for kind, wanted, have in checks:
        for spec in wanted:
            if spec.name not in have:
                names = ", ".join(sorted(have)) or "none"
                differences.append(f"{kind} {spec.name!r} is missing (model has: {names})")
                continue
            differences.extend(_check_tensor(f"{kind} {spec.name!r}", spec, have[spec.name]))
    if expected.outputs_by_position:
        differences.extend(_check_positional(expected, actual_outputs))
    expected_inputs = {spec.name for spec in expected.inputs}
    for name in sorted(set(inputs) - expected_inputs):
        differences.append(f"input {name!r} is not fed by the {expected.name} adapter")
    return differences


def session_io(session: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Describe an onnxruntime session's I/O in the manifest format.

    Used when sessions are made outside the store (tests, ad-hoc scripts) and an
    adapter still has to be picked by signature.
    """

    def describe(args: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": arg.name,
                "shape": list(arg.shape),
                "dtype": _ORT_TYPES.get(arg.type, arg.type),
            }
            for arg in args
        ]

    return describe(session.get_inputs()), describe(session.get_outputs())
