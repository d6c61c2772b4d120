"""ONNX export of the tiny config: FP32 parity with torch, INT8 sanity, the manifest, the
Gemm rewrite that lets the vocabulary head be quantized.

The model is untrained; two changes make the comparisons meaningful: the fusion gates are
opened (at initialisation they are closed and h_t would be the same for every input) and
the tied token embedding is scaled up so that beam scores are well separated rather than
near-ties decided by rounding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from keypilot.config import load_config
from keypilot.inference.export import export_run
from keypilot.inference.onnx_predictor import MANIFEST_FILE, make_session
from keypilot.inference.parity import parity_report
from keypilot.inference.predictor import load_model
from keypilot.inference.quantize import compact_names, gemm_to_matmul
from keypilot.labels import EXPERTS, LAYOUTS
from keypilot.run_folder import FUSION_FILE
from keypilot.models.keypilot_model import KeyPilotModel

ROOT = Path(__file__).resolve().parents[1]


TEST_OFFSETS = {"EN": 0.5, "ZH": -0.25, "SYM": 1.0, "EMOJI": 0.0, "NUM": -0.5}


def make_tiny_export(folder: Path, shared_embedding: bool = False) -> tuple[Path, Path, Path]:
    """(run, data, export) of an untrained tiny model with FP32 and INT8 graphs; built once per
    test session and shared by ``test_onnx_predictor.py``. ``shared_embedding``: the text
    encoder reads the decoder's token table."""
    from keypilot.data.generate import generate_dataset
    from keypilot.tokenizer import train_tokenizer

    run, data, export = folder / "run", folder / "data", folder / "export"
    if (export / MANIFEST_FILE).is_file():
        return run, data, export
    generate_dataset(data, num=16, seed=3, workers=1, progress=False)
    run.mkdir(parents=True, exist_ok=True)
    train_tokenizer(data / "train.jsonl", run / "tokenizer.json")
    torch.manual_seed(0)
    config = load_config(ROOT / "configs" / "tiny.yaml")
    config["model"]["text_encoder"]["shared_embedding"] = shared_embedding
    model = KeyPilotModel.from_config(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "gate" in name:
                param.fill_(0.8)
        model.decoder.token_emb.weight.mul_(40)
    model.save_pretrained(run)
    # Layout offsets as fitted on validation (fit_fusion): both predictors and the keystroke
    # graph must decide with them.
    fusion = {"prior_weight": float(model.decoder.prior_weight.detach()), "layout_offsets": TEST_OFFSETS}
    (run / FUSION_FILE).write_text(json.dumps(fusion), encoding="utf-8")
    export_run(run, export, int8=True, calib_images=4, calib_data=data, parity=False)
    return run, data, export


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_tiny_export(tmp_path_factory.getbasetemp() / "onnx-tiny")


@pytest.fixture(scope="module")
def parity(tiny_export: tuple[Path, Path, Path]) -> dict:
    run, data, export = tiny_export
    return parity_report(load_model(run), export, data, int8=True, num=4)


def test_fp32_graphs_match_torch(parity: dict) -> None:
    fp32 = parity["fp32"]
    for key, value in fp32.items():
        if key.startswith("max_abs_diff"):
            assert value < 1e-4, (key, value)
    assert fp32["top5_agreement"] == 1.0
    assert fp32["layout_agreement"] == 1.0


def test_int8_graphs_close_to_torch(parity: dict) -> None:
    int8 = parity["int8"]
    assert all(np.isfinite(v) for v in int8.values())
    assert int8["layout_agreement"] >= 0.75
    # The static-INT8 screen encoder keeps the visual tokens close (they are O(1)).
    assert int8["max_abs_diff_global_feat"] < 0.05
    assert int8["max_abs_diff_task_probs"] < 0.1


def test_layout_offsets_are_part_of_the_decision(tiny_export: tuple[Path, Path, Path]) -> None:
    # The run's fitted layout offsets reach the model both predictors decide with, and the
    # exported keystroke graph (test_fp32_graphs_match_torch compares its logits with that model's).
    run, _, _ = tiny_export
    offsets = load_model(run).layout_router.logit_offset.tolist()
    assert offsets == [TEST_OFFSETS[layout] for layout in LAYOUTS]
    assert KeyPilotModel.from_pretrained(run).layout_router.logit_offset.tolist() == [0.0] * len(LAYOUTS)


def test_manifest_describes_every_graph(tiny_export: tuple[Path, Path, Path]) -> None:
    _, _, export = tiny_export
    manifest = json.loads((export / MANIFEST_FILE).read_text(encoding="utf-8"))
    expected = {"screen", "keystroke", "decode_head"} | {f"expert_{name}" for name in EXPERTS}
    assert set(manifest["graphs"]) == set(manifest["int8_graphs"]) == expected
    assert manifest["labels"]["experts"] == list(EXPERTS)
    assert (export / manifest["tokenizer"]).is_file()
    for name, spec in manifest["graphs"].items():
        session = make_session(export / spec["file"])
        assert [i.name for i in session.get_inputs()] == spec["inputs"] == list(spec["input_shapes"])
        assert [o.name for o in session.get_outputs()] == spec["outputs"]
        int8_file = export / manifest["int8_graphs"][name]["file"]
        assert int8_file.stat().st_size < (export / spec["file"]).stat().st_size


def test_vocabulary_matrix_stored_once_and_quantized(tiny_export: tuple[Path, Path, Path]) -> None:
    _, _, export = tiny_export
    mc = json.loads((export / MANIFEST_FILE).read_text(encoding="utf-8"))["config"]["model"]
    for file, dtype in (("decode_head.onnx", onnx.TensorProto.FLOAT), ("decode_head.int8.onnx", onnx.TensorProto.INT8)):
        tables = [t for t in onnx.load(str(export / file)).graph.initializer if np.prod(t.dims) == mc["vocab_size"] * mc["d_model"]]
        assert [t.data_type for t in tables] == [dtype], file


def test_compact_names_keeps_outputs_exactly(tiny_export: tuple[Path, Path, Path], tmp_path: Path) -> None:
    export = tiny_export[2]
    model = onnx.load(str(export / "screen.onnx"))
    # the same scale written twice, as quantization writes one per consumer
    model.graph.initializer.extend([onnx.numpy_helper.from_array(np.float32(0.5), name) for name in ("dup_a_scale", "dup_b_scale")])
    model.graph.node.extend([onnx.helper.make_node("Mul", ["global_feat_raw", "dup_a_scale"], ["half_a"]),
                             onnx.helper.make_node("Mul", ["half_a", "dup_b_scale"], ["global_feat"])])
    for node in model.graph.node[:-2]:
        node.output[:] = ["global_feat_raw" if name == "global_feat" else name for name in node.output]
    onnx.save(model, str(tmp_path / "before.onnx"))
    before = len(model.graph.initializer)
    compact = compact_names(model)
    onnx.save(compact, str(tmp_path / "after.onnx"))
    names = [name for node in compact.graph.node for name in (*node.input, *node.output)]
    assert all(len(name) <= 15 for name in names if name not in ("image", "global_feat", "roi_feats"))
    assert len(compact.graph.initializer) == before - 1  # the duplicate scale is gone
    mc = json.loads((export / MANIFEST_FILE).read_text(encoding="utf-8"))["config"]["model"]
    image = np.random.default_rng(0).random((1, 3, mc["image_height"], mc["image_width"]), dtype=np.float32)
    expected = make_session(tmp_path / "before.onnx").run(None, {"image": image})
    got = make_session(tmp_path / "after.onnx").run(None, {"image": image})
    for a, b in zip(expected, got, strict=True):
        assert np.array_equal(a, b)


def test_gemm_rewrite_keeps_outputs(tmp_path: Path) -> None:
    linear = torch.nn.Linear(8, 5).eval()
    path = tmp_path / "gemm.onnx"
    torch.onnx.export(linear, (torch.randn(2, 8),), str(path), dynamo=False, opset_version=17, input_names=["x"], output_names=["y"])
    model = onnx.load(str(path))
    assert [n.op_type for n in model.graph.node] == ["Gemm"]
    rewritten = gemm_to_matmul(model)
    assert [n.op_type for n in rewritten.graph.node] == ["MatMul", "Add"]
    onnx.save(rewritten, str(tmp_path / "matmul.onnx"))
    x = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    got = make_session(tmp_path / "matmul.onnx").run(None, {"x": x})[0]
    np.testing.assert_allclose(got, linear(torch.from_numpy(x)).detach().numpy(), atol=1e-6)
