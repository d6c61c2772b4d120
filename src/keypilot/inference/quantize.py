"""INT8 versions of the exported graphs.

Two methods, one per kind of graph (see ``docs/export.md``):

- the screen encoder is convolutional, and ``quantize_dynamic`` would turn its convolutions
  into ``ConvInteger`` (3-7x slower than FP32 on CPU), so it is quantized *statically*: QDQ,
  per-channel weights, activation ranges calibrated on real rendered screenshots letterboxed
  exactly as the predictor letterboxes them. With linear attention (``attention: linear``)
  the graph is convolutions, residual adds, gating products, pooling and a few small
  products, so every op type ORT has an integer kernel for is quantized: the tensors stay
  uint8 (channels-last) from one convolution to the next instead of going through float
  between them. With the previous softmax attention only the convolutions are static (QDQ
  around every attention product was slower than FP32) and its ``MatMul``s get dynamic INT8;
- the keystroke, expert and decode-head graphs are linear layers, attention and embedding
  tables: ``quantize_dynamic`` (int8 weights, activation scales computed per call) needs no
  calibration and shrinks the embedding and vocabulary matrices that dominate the file size.

Every INT8 graph keeps its weights in ``<file>.data`` beside it (ONNX external data):
onnxruntime maps that file instead of copying it, so rows of an embedding table that no
keystroke looks up never become resident memory of the predictor (``docs/export.md``).

Torch-free: only onnx, onnxruntime and numpy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from keypilot.inference.token_table import table_paths

# Ops of a softmax-attention screen encoder that are quantized statically. Static QDQ MatMul
# put Q/DQ pairs around every attention product and was slower than FP32 (docs/export.md).
SOFTMAX_STATIC_OP_TYPES: tuple[str, ...] = ("Conv",)
# Gather quantizes the embedding tables (token, position, user), the bulk of the bytes.
DYNAMIC_OP_TYPES: tuple[str, ...] = ("MatMul", "Gather")


class ScreenCalibrationReader(CalibrationDataReader):
    """Feeds letterboxed screenshots ``[1, 3, H, W]`` float32 to the calibrator, one per call."""

    def __init__(self, images: Iterable[np.ndarray], input_name: str = "image") -> None:
        self._images: Iterator[np.ndarray] = iter(images)
        self._input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._images, None)
        return None if image is None else {self._input_name: image[None].astype(np.float32)}


def quantize_screen_encoder(fp32_path: Path, int8_path: Path, calibration: Iterable[np.ndarray], attention: str = "linear") -> None:
    """INT8 screen encoder calibrated on ``calibration`` (``[3, H, W]`` arrays): static QDQ of
    every op (``attention="linear"``), or static convolutions + dynamic ``MatMul`` (``"softmax"``)."""
    with tempfile.TemporaryDirectory() as tmp:
        static = Path(tmp) / "static.onnx"
        if attention == "linear":
            _quantize_static(fp32_path, static, calibration, op_types=None)
        else:
            _quantize_static(fp32_path, Path(tmp) / "conv.onnx", calibration, op_types=SOFTMAX_STATIC_OP_TYPES)
            _quantize_dynamic(Path(tmp) / "conv.onnx", static, op_types=("MatMul",))
        save_with_external_data(onnx.load(str(static)), int8_path)


def _quantize_static(fp32_path: Path, int8_path: Path, calibration: Iterable[np.ndarray], op_types: Sequence[str] | None) -> None:
    with tempfile.TemporaryDirectory() as tmp, _quiet_root_logger():
        # Shape inference and graph cleanup first, as ORT recommends before static quantization:
        # it folds constants so that BatchNorm is already merged into the convolutions.
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        # The stem (the first convolution, 3 input channels) stays FP32: the int8 kernel is
        # poor at 3 channels (0.8 ms for its 14 MMAC at 512 x 256; the graph is 0.5 ms faster without it).
        convolutions = [node.name for node in onnx.load(str(prepared), load_external_data=False).graph.node if node.op_type == "Conv"]
        quantize_static(
            str(prepared),
            str(int8_path),
            ScreenCalibrationReader(calibration),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=None if op_types is None else list(op_types),
            per_channel=True,
            # Without VNNI, u8 x s8 products may saturate in VPMADDUBSW; a 7-bit weight range
            # avoids it on such CPUs (an export must run on whichever CPU the predictor has).
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=convolutions[:1] if op_types is None else [],
        )


def gemm_to_matmul(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite ``Gemm`` nodes with constant weights as ``MatMul`` + ``Add``, in place.

    The exporter writes a linear layer on a 2-D input (the vocabulary head on ``[B, d]``) as
    ``Gemm``, which ``quantize_dynamic`` leaves in FP32; as ``MatMul`` it becomes
    ``MatMulInteger`` with int8 weights.
    """
    weights = {init.name: init for init in model.graph.initializer}
    nodes: list[onnx.NodeProto] = []
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        plain = attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0 and not attrs.get("transA", 0)
        if node.op_type != "Gemm" or not plain or node.input[1] not in weights:
            nodes.append(node)
            continue
        weight = onnx.numpy_helper.to_array(weights[node.input[1]])
        if attrs.get("transB", 0):
            weight = np.ascontiguousarray(weight.T)
        name = node.input[1] + "_kn"
        model.graph.initializer.append(onnx.numpy_helper.from_array(weight, name))
        product = node.output[0] + "_matmul" if len(node.input) > 2 else node.output[0]
        nodes.append(onnx.helper.make_node("MatMul", [node.input[0], name], [product], name=node.name + "_matmul"))
        if len(node.input) > 2:
            nodes.append(onnx.helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=node.name + "_bias"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {name for node in model.graph.node for name in node.input}
    kept = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return model


def quantize_linear_graph(fp32_path: Path, int8_path: Path) -> None:
    """Dynamic INT8 (weights only, per-tensor) of a graph made of linear layers and tables."""
    with tempfile.TemporaryDirectory() as tmp:
        rewritten, quantized = Path(tmp) / "matmul.onnx", Path(tmp) / "int8.onnx"
        onnx.save(gemm_to_matmul(onnx.load(str(fp32_path))), str(rewritten))
        _quantize_dynamic(rewritten, quantized)
        save_with_external_data(onnx.load(str(quantized)), int8_path)


def compact_names(model: onnx.ModelProto) -> onnx.ModelProto:
    """Short tensor and node names, one copy of each identical small constant, in place; the
    graph computes exactly what it did (its inputs and outputs keep their names).

    onnxruntime keeps several copies of every name per node and initializer, and a name over 15
    characters is a heap block each time (a QDQ screen graph's names average 48). Quantization
    also writes the same scale and zero point once per consumer. Together about 3 MB of the
    predictor's memory at the reference size (docs/export.md, "Memory").
    """
    graph = model.graph
    if any(attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for node in graph.node for attr in node.attribute):
        raise ValueError("compact_names: graphs with subgraphs are not supported")
    kept = {value.name for value in (*graph.input, *graph.output)}
    short: dict[str, str] = {}

    def rename(name: str) -> str:
        if not name or name in kept:
            return name
        return short.setdefault(name, f"t{len(short):x}")

    first: dict[tuple, str] = {}
    alias: dict[str, str] = {}
    unique = []
    for init in graph.initializer:
        nbytes = int(np.prod(init.dims)) * onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize
        if init.data_location != onnx.TensorProto.EXTERNAL and nbytes <= 64:  # read only the small ones
            key = (init.data_type, tuple(init.dims), onnx.numpy_helper.to_array(init).tobytes())
            if key in first:
                alias[init.name] = first[key]
                continue
            first[key] = init.name
        unique.append(init)
    del graph.initializer[:]
    graph.initializer.extend(unique)
    for init in graph.initializer:
        init.name = rename(init.name)
    for index, node in enumerate(graph.node):
        node.name, node.doc_string = f"n{index:x}", ""
        node.input[:] = [rename(alias.get(name, name)) for name in node.input]
        node.output[:] = [rename(name) for name in node.output]
    del graph.value_info[:]  # shapes of intermediates: onnxruntime infers them again
    return model


def save_with_external_data(model: onnx.ModelProto, path: Path) -> None:
    """Write ``model`` (names compacted) to ``path`` with its tensors in ``path.name + ".data"``
    beside it (replaced if present)."""
    compact_names(model)
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)  # onnx appends to an existing data file
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data.name, size_threshold=1024)


def graph_files(path: str | os.PathLike) -> list[Path]:
    """An exported graph's files: the ``.onnx`` and, when it has them, its external data file and
    the token table read beside it (the keystroke graph's, ``keypilot.inference.token_table``)."""
    path = Path(path)
    companions = [path.with_name(path.name + ".data"), *table_paths(path)]
    return [path, *(f for f in companions if f.is_file())]


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    # The quantizers log root-logger warnings that need no action here: quantize_dynamic
    # recommends pre-processing (only static quantization needs it), quantize_static notes
    # per-channel axes of 1-D weights (LayerNorm, biases) that it quantizes per tensor.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _quantize_dynamic(fp32_path: Path, int8_path: Path, op_types: tuple[str, ...] = DYNAMIC_OP_TYPES) -> None:
    with _quiet_root_logger():
        quantize_dynamic(str(fp32_path), str(int8_path), op_types_to_quantize=list(op_types), per_channel=False,
                         reduce_range=False, weight_type=QuantType.QInt8)


def file_mb(path: str | os.PathLike) -> float:
    """Size of a graph (with its external data file, if any), MiB."""
    return sum(f.stat().st_size for f in graph_files(path)) / 2**20
