"""The arithmetic floor of a graph: its multiply-accumulates over the core's peak MAC rate.

``graph_macs`` counts the MACs an ONNX graph performs for given input shapes (convolutions,
matrix products, Gemm, Einsum: everything else is memory traffic, not arithmetic).
``peak_macs_per_s`` times one large matrix product in onnxruntime, FP32 (``MatMul``) and
INT8 (``MatMulInteger``, uint8 x int8, the VNNI kernel where the CPU has one), at the
predictor's thread count: the fastest this core multiplies through ORT's own kernels.
MACs / peak is then the time a stage could not go below; measured / floor says how far
from the hardware limit it runs (``keypilot bench infer`` prints both).

Needs ``onnx`` (the full install): the bench's parent process calls it, the predictor never does.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper

PEAK_SIZE = 1024  # M = N = K of the timed product: 1.07 GMAC, large enough for the kernels' peak


def _node_macs(node: onnx.NodeProto, shapes: dict[str, list[int]]) -> int:
    def shape(i: int) -> list[int] | None:
        return shapes.get(node.input[i]) if i < len(node.input) else None

    out = shapes.get(node.output[0])
    op = node.op_type
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        weight = shape(3 if op == "QLinearConv" else 1)
        if weight is None or out is None:
            raise ValueError(f"no shape for {op} {node.name}")
        return math.prod(out) * math.prod(weight[1:])
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul", "FusedMatMul", "Gemm"):
        a = shape(0)
        if a is None or out is None:
            raise ValueError(f"no shape for {op} {node.name}")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        k = a[-2] if attrs.get("transA", 0) else a[-1]
        return math.prod(out) * k
    if op == "Einsum":
        equation = next(onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "equation")
        terms = equation.decode() if isinstance(equation, bytes) else equation
        sizes: dict[str, int] = {}
        for letters, i in zip(terms.split("->")[0].split(","), range(len(node.input))):
            operand = shape(i)
            if operand is None:
                raise ValueError(f"no shape for Einsum {node.name}")
            sizes.update(zip(letters.strip(), operand))
        return math.prod(sizes.values())
    return 0


def _feed(value: onnx.ValueInfoProto, shape: list[int]) -> np.ndarray:
    dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
    if np.issubdtype(dtype, np.integer):
        return np.zeros(shape, dtype)  # ids, masks, indices: 0 is valid for every graph here
    return np.random.default_rng(0).random(shape, dtype=np.float32).astype(dtype)


def value_shapes(model: onnx.ModelProto, input_shapes: dict[str, list[int]]) -> dict[str, list[int]]:
    """The shape of every tensor of ``model`` for inputs of ``input_shapes``, read from one
    onnxruntime run with every intermediate tensor exposed: static shape inference stops at
    the exporter's Shape -> Reshape chains, a run does not."""
    import onnxruntime as ort

    typed = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v for v in [*typed.graph.value_info, *typed.graph.output]}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    for node in probe.graph.node:
        for name in node.output:
            if name and name not in known and name in types:
                probe.graph.output.append(types[name])
                known.add(name)
    feeds = {}
    for value in model.graph.input:
        dims = [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
        shape = input_shapes.get(value.name, dims)
        if any(d is None for d in shape) or len(shape) != len(dims):
            raise ValueError(f"give the shape of input {value.name!r} (dimensions {dims})")
        feeds[value.name] = _feed(value, list(shape))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    shapes = {name: list(array.shape) for name, array in zip(names, session.run(names, feeds))}
    shapes.update({name: list(array.shape) for name, array in feeds.items()})
    shapes.update({init.name: list(init.dims) for init in model.graph.initializer})
    for node in model.graph.node:  # constants written as nodes
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            shapes[node.output[0]] = list(node.attribute[0].t.dims)
    return shapes


def graph_macs(path: str | Path, input_shapes: dict[str, list[int]] | None = None) -> int:
    """MACs of one run of the ONNX graph at ``path`` with inputs of ``input_shapes`` (every
    dynamic input dimension must be given; inputs not named keep their static shapes)."""
    return MacCounter(path).macs(input_shapes or {})


class MacCounter:
    """``graph_macs`` of one graph for many input shapes (the graph is read once, each shape counted once)."""

    def __init__(self, path: str | Path) -> None:
        self.model = onnx.load(str(path))
        self._counted: dict[str, int] = {}

    def macs(self, input_shapes: dict[str, list[int]]) -> int:
        key = repr(sorted((name, list(shape)) for name, shape in input_shapes.items()))
        if key not in self._counted:
            shapes = value_shapes(self.model, input_shapes)
            self._counted[key] = sum(_node_macs(node, shapes) for node in self.model.graph.node)
        return self._counted[key]


def _matmul_graph(int8: bool, size: int) -> bytes:
    rng = np.random.default_rng(0)
    tensor = onnx.helper.make_tensor_value_info
    if int8:
        weight = rng.integers(-127, 128, (size, size), dtype=np.int8)
        node = onnx.helper.make_node("MatMulInteger", ["a", "b"], ["y"])
        inputs, output = [tensor("a", onnx.TensorProto.UINT8, [size, size])], tensor("y", onnx.TensorProto.INT32, [size, size])
    else:
        weight = rng.standard_normal((size, size)).astype(np.float32)
        node = onnx.helper.make_node("MatMul", ["a", "b"], ["y"])
        inputs, output = [tensor("a", onnx.TensorProto.FLOAT, [size, size])], tensor("y", onnx.TensorProto.FLOAT, [size, size])
    graph = onnx.helper.make_graph([node], "peak", inputs, [output], [onnx.numpy_helper.from_array(weight, "b")])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def peak_macs_per_s(threads: int = 1, int8: bool = False, size: int = PEAK_SIZE, seconds: float = 1.0) -> float:
    """The fastest MAC rate of a ``size``-cubed matrix product in onnxruntime at ``threads``
    intra-op threads (the best of the runs that fit in ``seconds``, after a warm-up)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(_matmul_graph(int8, size), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (size, size), dtype=np.uint8) if int8 else rng.standard_normal((size, size)).astype(np.float32)
    session.run(None, {"a": a})
    best, deadline = float("inf"), time.perf_counter() + seconds
    for _ in range(100):
        start = time.perf_counter()
        session.run(None, {"a": a})
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return size**3 / best


def describe_peak(threads: int = 1, size: int = PEAK_SIZE) -> dict[str, Any]:
    """Peak FP32 and INT8 MAC rates (GMAC/s) of a ``size``-cubed product at ``threads`` threads."""
    return {"threads": threads, "size": size, "fp32_gmacs": peak_macs_per_s(threads, size=size) / 1e9,
            "int8_gmacs": peak_macs_per_s(threads, int8=True, size=size) / 1e9}
