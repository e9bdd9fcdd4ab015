"""Deliberately broken swapper releases, for ff compare and guarded runs.

Each takes a working swapper's ONNX bytes (a stand-in from the tests' model
builders) and reroutes its ``output`` through one planted flaw, keeping the I/O
contract (names, shapes, dtypes) exactly, so the release signs, locks, loads and
passes every contract check: only what it computes is wrong, as with a real
regression that reached users.

- ``nan``: every output value is NaN (a model exported with a broken normalisation).
- ``black``: all zeros, a black face.
- ``shifted``: the face crop rolled 32 px sideways (a changed alignment template).
- ``scrambled``: height and width swapped (a transposed export): no longer a face.
- ``slow``: the right output after a chain of ``work`` [512, 512] matrix products that
  depend on the input (so onnxruntime cannot fold them away): a speed regression.
"""

from __future__ import annotations

import numpy as np

FLAWS = ("nan", "black", "shifted", "scrambled", "slow")
SHIFT = 32


def broken_swapper(good: bytes, flaw: str, *, work: int = 8) -> bytes:
    import onnx
    from onnx import checker, helper, numpy_helper

    if flaw not in FLAWS:
        raise ValueError(f"unknown flaw {flaw!r}; choose from {FLAWS}")
    model = onnx.load_from_string(good)
    graph = model.graph
    (last,) = [node for node in graph.node if "output" in node.output]
    last.output[list(last.output).index("output")] = "good_output"

    def const(name: str, value: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(value, name=name))
        return name

    node = helper.make_node
    nodes: list[onnx.NodeProto]
    if flaw == "nan":
        nodes = [node("Mul", ["good_output", const("flaw_nan", np.array(np.nan, np.float32))],
                      ["output"])]
    elif flaw == "black":
        nodes = [node("Mul", ["good_output", const("flaw_zero", np.array(0.0, np.float32))],
                      ["output"])]
    elif flaw == "shifted":
        nodes = [
            node("Slice", ["good_output", const("flaw_s0", np.array([SHIFT], np.int64)),
                           const("flaw_end", np.array([128], np.int64)),
                           const("flaw_axis", np.array([3], np.int64))], ["flaw_right"]),
            node("Slice", ["good_output", const("flaw_zero_i", np.array([0], np.int64)),
                           const("flaw_s1", np.array([SHIFT], np.int64)), "flaw_axis"],
                 ["flaw_left"]),
            node("Concat", ["flaw_right", "flaw_left"], ["output"], axis=3),
        ]
    elif flaw == "scrambled":
        nodes = [node("Transpose", ["good_output"], ["output"], perm=[0, 1, 3, 2])]
    else:
        weights = np.random.default_rng(7).standard_normal((512, 512)).astype(np.float32)
        const("flaw_w", weights / np.float32(np.sqrt(512)))
        nodes = [node("Reshape", ["source", const("flaw_row", np.array([1, 512], np.int64))],
                      ["flaw_0"]),
                 node("Tile", ["flaw_0", const("flaw_tile", np.array([512, 1], np.int64))],
                      ["flaw_1"])]
        for step in range(work):
            nodes.append(node("MatMul", [f"flaw_{step + 1}", "flaw_w"], [f"flaw_{step + 2}"]))
        nodes += [
            node("ReduceMean", [f"flaw_{work + 1}"], ["flaw_mean"], keepdims=0),
            node("Mul", ["flaw_mean", const("flaw_nothing", np.array(0.0, np.float32))],
                 ["flaw_zero_sum"]),
            node("Add", ["good_output", "flaw_zero_sum"], ["output"]),
        ]
    graph.node.extend(nodes)
    checker.check_model(model)
    return model.SerializeToString()
