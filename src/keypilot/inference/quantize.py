"""INT8 versions of the exported graphs.

Two methods, one per kind of graph (see ``docs/export.md``):

- the screen encoder is convolutional, and ``quantize_dynamic`` would turn its convolutions
  into ``ConvInteger`` (3-7x slower than FP32 on CPU), so its convolutions are quantized
  *statically*: QDQ, per-channel weights, activation ranges calibrated on real rendered
  screenshots letterboxed exactly as the predictor letterboxes them. Its MobileViT attention
  and linear layers (``MatMul``) then get dynamic INT8 like the rest;
- the keystroke, expert and decode-head graphs are linear layers, attention and embedding
  tables: ``quantize_dynamic`` (int8 weights, activation scales computed per call) needs no
  calibration and shrinks the embedding and vocabulary matrices that dominate the file size.

Torch-free: only onnx, onnxruntime and numpy.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
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

# Ops of the screen encoder that are quantized statically. Static QDQ MatMul put Q/DQ pairs
# around every attention product and was slower than FP32 on AVX2 (docs/export.md).
STATIC_OP_TYPES: tuple[str, ...] = ("Conv",)
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


def quantize_screen_encoder(fp32_path: Path, int8_path: Path, calibration: Iterable[np.ndarray]) -> None:
    """INT8 screen encoder: static QDQ convolutions calibrated on ``calibration`` (``[3, H, W]``
    arrays), then dynamic INT8 for the MobileViT attention and linear layers (``MatMul``)."""
    with tempfile.TemporaryDirectory() as tmp:
        static = Path(tmp) / "static.onnx"
        _quantize_convolutions(fp32_path, static, calibration)
        _quantize_dynamic(static, int8_path, op_types=("MatMul",))


def _quantize_convolutions(fp32_path: Path, int8_path: Path, calibration: Iterable[np.ndarray]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # Shape inference and graph cleanup first, as ORT recommends before static quantization:
        # it folds constants so that BatchNorm is already merged into the convolutions.
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(int8_path),
            ScreenCalibrationReader(calibration),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(STATIC_OP_TYPES),
            per_channel=True,
            # Without VNNI, u8 x s8 products may saturate in VPMADDUBSW; a 7-bit weight range avoids it.
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
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
        rewritten = Path(tmp) / "matmul.onnx"
        onnx.save(gemm_to_matmul(onnx.load(str(fp32_path))), str(rewritten))
        _quantize_dynamic(rewritten, int8_path)


def _quantize_dynamic(fp32_path: Path, int8_path: Path, op_types: tuple[str, ...] = DYNAMIC_OP_TYPES) -> None:
    # quantize_dynamic logs a root-logger warning recommending pre-processing, which only
    # static quantization needs.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(fp32_path), str(int8_path), op_types_to_quantize=list(op_types), per_channel=False,
                         reduce_range=False, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def file_mb(path: str | os.PathLike) -> float:
    return Path(path).stat().st_size / 2**20
