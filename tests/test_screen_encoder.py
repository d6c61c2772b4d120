"""The screen encoder's two designs (configs/*.yaml vs configs/*-v1.yaml): the pyramid form of F
equals the built map, separable attention computes what MobileViTv2's does, the previous design
still loads, and the MAC counter behind `keypilot bench infer`'s floors counts right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from keypilot.config import load_config
from keypilot.inference.floor import graph_macs
from keypilot.models.backbone import (
    MaterializedMap,
    MobileViTBackbone,
    PyramidMap,
    SeparableAttention,
)
from keypilot.models.keypilot_model import KeyPilotModel

ROOT = Path(__file__).resolve().parents[1]


def _tiny(name: str) -> dict:
    config = load_config(ROOT / "configs" / f"{name}.yaml")
    config["model"]["vocab_size"] = 512
    return config


def test_pyramid_map_equals_the_built_map() -> None:
    torch.manual_seed(0)
    backbone = MobileViTBackbone(0.5, [16, 24, 48, 64, 320], [32, 40, 48], [1, 1, 1], 48, "linear", "relu").eval()
    with torch.no_grad():
        levels = backbone.pyramid(torch.rand(2, 3, 128, 64))
        pyramid = PyramidMap(levels, backbone.lateral)
        built = sum(F.interpolate(backbone.lateral[l](x), scale_factor=2**l, mode="nearest") if l else backbone.lateral[0](x)
                    for l, x in enumerate(levels))  # nearest FPN, materialised
        dense = MaterializedMap(built)
        queries, weights = torch.randn(2, 4, 48), torch.rand(2, 4, *built.shape[-2:])
        pairs = {"mean": (pyramid.mean(), dense.mean()), "avg_pool": (pyramid.avg_pool(8), dense.avg_pool(8)),
                 "dot": (pyramid.dot(queries), dense.dot(queries)),
                 "weighted_mean": (pyramid.weighted_mean(weights), dense.weighted_mean(weights))}
        for name, (got, want) in pairs.items():
            torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4, msg=name)
        # the stride-32 features pooled with the weights summed onto their grid
        coarse = F.avg_pool2d(weights, 8) * 64
        want = torch.einsum("bkhw,bchw->bkc", coarse, levels[3]) / (weights.sum((2, 3))[..., None] + 1e-6)
        torch.testing.assert_close(pyramid.level_mean(weights, -1), want, atol=1e-5, rtol=1e-4)


def test_pyramid_map_needs_sides_multiple_of_32() -> None:
    backbone = MobileViTBackbone(0.5, [16, 24, 48, 64, 320], [32, 40, 48], [1, 1, 1], 48, "linear", "relu").eval()
    with torch.no_grad(), pytest.raises(ValueError, match="multiples of 32"):
        PyramidMap(backbone.pyramid(torch.rand(1, 3, 120, 64)), backbone.lateral)


def test_separable_attention_is_mobilevitv2s() -> None:
    """Projecting the attention-weighted mean input = the weighted mean of projected keys."""
    torch.manual_seed(0)
    attn = SeparableAttention(16).eval()
    x = torch.randn(2, 16, 6, 5)
    with torch.no_grad():
        weights = torch.softmax(attn.score(x).flatten(2), dim=-1)  # B x 1 x HW
        keys = attn.key(x.flatten(2).transpose(1, 2))  # every position's key: B x HW x d
        context = (weights.transpose(1, 2) * keys).sum(1)  # B x d
        want = attn.out(attn.value(x) * context[:, :, None, None])
        torch.testing.assert_close(attn(x), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["tiny", "tiny-v1"])
def test_both_designs_train_and_keep_the_output_contract(name: str) -> None:
    torch.manual_seed(0)
    model = KeyPilotModel.from_config(_tiny(name)).train()
    mc = model.config["model"]
    b, d = 2, mc["d_model"]
    image = torch.rand(b, 3, mc["image_height"], mc["image_width"])
    ids = torch.randint(6, 512, (b, 8))
    boxes = torch.tensor([[0.0, 0.8, 1.0, 0.95], [0.1, 0.3, 0.6, 0.4], [0.0, 0.55, 1.0, 1.0], [0.0, 0.0, 1.0, 0.08]]).expand(b, 4, 4)
    out = model(image, ids, torch.ones_like(ids), roi_boxes=boxes, roi_valid=torch.ones(b, 4, dtype=torch.bool))
    assert out["global_feat"].shape == (b, d) and out["roi_feats"].shape == (b, 4, d) and out["text_feat"].shape == (b, d)
    assert out["roi_mask_logits"].shape == (b, 4, mc["image_height"] // 4, mc["image_width"] // 4)
    (out["roi_feats"].sum() + out["global_feat"].sum()).backward()
    assert model.encoder.sam_lite.prompts.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.encoder.backbone.lateral.parameters())


def test_a_config_without_the_new_keys_is_the_previous_design(tmp_path: Path) -> None:
    """Runs saved before `attention`/`activation`/`roi_tokens` existed load as what they were."""
    config = _tiny("tiny-v1")
    for key in ("attention", "activation"):
        del config["model"]["backbone"][key]
    del config["model"]["roi_tokens"]
    torch.manual_seed(0)
    old = KeyPilotModel.from_config(config)
    old.save_pretrained(tmp_path)
    loaded = KeyPilotModel.from_pretrained(tmp_path)  # strict: every weight must match
    assert loaded.encoder.roi_tokens == "crops" and loaded.encoder.backbone.stage8[1].attention == "softmax"


@pytest.mark.parametrize(("key", "value", "message"), [("backbone.attention", "flash", "attention"),
                                                       ("backbone.activation", "gelu", "activation"),
                                                       ("roi_tokens", "boxes", "roi_tokens")])
def test_unknown_design_choices_are_named(key: str, value: str, message: str) -> None:
    config = _tiny("tiny")
    section = config["model"]
    *path, last = key.split(".")
    for part in path:
        section = section[part]
    section[last] = value
    with pytest.raises(ValueError, match=message):
        KeyPilotModel.from_config(config)


def test_mac_count_of_a_known_graph(tmp_path: Path) -> None:
    helper = onnx.helper
    weight = onnx.numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "w")
    matrix = onnx.numpy_helper.from_array(np.zeros((8, 5), np.float32), "m")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),  # 1 x 8 x 8 x 8 out, 27 MAC each
             helper.make_node("ReduceMean", ["c"], ["p"], axes=[2, 3], keepdims=0),
             helper.make_node("MatMul", ["p", "m"], ["y"])]  # 1 x 8 @ 8 x 5
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["b", 3, 16, 16])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [weight, matrix])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "g.onnx"))
    assert graph_macs(tmp_path / "g.onnx", {"x": [1, 3, 16, 16]}) == 8 * 8 * 8 * 27 + 8 * 5
    assert graph_macs(tmp_path / "g.onnx", {"x": [2, 3, 16, 16]}) == 2 * (8 * 8 * 8 * 27 + 8 * 5)
