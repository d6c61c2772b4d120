"""KeyPilotModel: output contract, gradient flow, caching, determinism, save/load, SAM-Lite geometry, beam search."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from keypilot.config import load_config
from keypilot.labels import EXPERTS, LAYOUTS, ROI_KEYS, TASKS
from keypilot.models.keypilot_model import KeyPilotModel
from keypilot.models.moe import expert_weights
from keypilot.models.personality import Personality
from keypilot.models.sam_lite import boxes_from_masks, crop_and_letterbox, rasterize_boxes, roi_mask_loss

ROOT = Path(__file__).resolve().parents[1]
VOCAB = 512  # the tiny config's 32k vocabulary only slows the tests down
EOS = 5


def tiny_config() -> dict:
    config = load_config(ROOT / "configs" / "tiny.yaml")
    config["model"]["vocab_size"] = VOCAB
    return config


def build(seed: int = 0) -> KeyPilotModel:
    torch.manual_seed(seed)
    return KeyPilotModel.from_config(tiny_config())


def batch(b: int = 3, seed: int = 1) -> dict:
    mc = tiny_config()["model"]
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(6, VOCAB, (b, mc["max_context_tokens"]), generator=g)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, 7:] = 0
    targets = torch.randint(6, VOCAB, (b, mc["max_target_tokens"]), generator=g)
    targets[0, 1:] = -100
    roi_boxes = torch.tensor([[0.0, 0.8, 1.0, 0.95], [0.1, 0.3, 0.6, 0.4], [0.0, 0.55, 1.0, 1.0], [0.0, 0.0, 1.0, 0.08]]).expand(b, 4, 4)
    roi_valid = torch.tensor([True, False, True, True]).expand(b, 4)
    return {
        "image": torch.rand(b, 3, mc["image_height"], mc["image_width"], generator=g),
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "user_id": torch.tensor([3, -1, 700])[:b],
        "prev_layout": torch.tensor([0, 1, 4])[:b],
        "target_tokens": targets,
        "roi_boxes": roi_boxes.clone(),
        "roi_valid": roi_valid.clone(),
        "prior_features": torch.rand(b, mc["prior_features"], generator=g),
    }


@pytest.fixture(scope="module")
def model() -> KeyPilotModel:
    return build()


def test_output_keys_and_shapes(model: KeyPilotModel) -> None:
    model.eval()
    x = batch()
    d, b = model.config["model"]["d_model"], 3
    with torch.no_grad():
        single = model(x["image"], x["input_ids"], x["attention_mask"])
        forced = model(**x)
    h, w = x["image"].shape[-2] // 4, x["image"].shape[-1] // 4
    expected = {
        "global_feat": (b, d), "text_feat": (b, d), "roi_feats": (b, len(ROI_KEYS), d), "h_t": (b, d),
        "logits": (b, VOCAB), "task_logits": (b, len(TASKS)), "task_probs": (b, len(TASKS)),
        "layout_logits": (b, len(LAYOUTS)), "layout_probs": (b, len(LAYOUTS)), "layout_id": (b,),
        "layout_next": (b,), "expert_logits": (b, len(EXPERTS)), "expert_probs": (b, len(EXPERTS)),
        "roi_mask_logits": (b, 4, h, w), "roi_boxes_pred": (b, 4, 4), "e_task": (b, d), "e_layout": (b, d),
    }  # fmt: skip
    assert {k: tuple(v.shape) for k, v in single.items()} == expected
    assert forced["logits"].shape == (b, x["target_tokens"].shape[1], VOCAB)
    for key in ("task_probs", "layout_probs", "expert_probs"):
        torch.testing.assert_close(single[key].sum(-1), torch.ones(b))
    torch.testing.assert_close(single["layout_probs"], single["layout_logits"].softmax(-1))
    assert torch.equal(single["layout_id"], single["layout_logits"].argmax(-1))
    # the first teacher-forced row is the untargeted first-token prediction
    torch.testing.assert_close(forced["logits"][:, 0], model(**{**x, "target_tokens": None})["logits"], atol=1e-5, rtol=1e-5)


def test_reference_config_forward() -> None:
    torch.manual_seed(0)
    model = KeyPilotModel.from_config(load_config(ROOT / "configs" / "keypilot.yaml")).eval()
    image = torch.rand(1, 3, 512, 256)
    ids = torch.randint(0, 32000, (1, 64))
    with torch.no_grad():
        out = model(image, ids, torch.ones_like(ids))
    assert out["logits"].shape == (1, 32000)
    assert out["roi_mask_logits"].shape == (1, 4, 128, 64)
    assert out["global_feat"].shape == out["h_t"].shape == (1, 256)


def _groups(model: KeyPilotModel) -> dict[str, list[torch.nn.Parameter]]:
    enc, dec = model.encoder, model.decoder
    return {
        "backbone": list(enc.backbone.parameters()),
        "global_head": list(enc.global_head.parameters()),
        "sam_lite": list(enc.sam_lite.parameters()),
        "text_encoder": list(enc.text_encoder.parameters()),
        "personality": list(enc.personality.parameters()),
        "fusion": list(enc.fusion.parameters()),
        "task_router": list(model.task_router.parameters()),
        "layout_router": list(model.layout_router.parameters()),
        "moe_router": list(dec.moe.router.parameters()) + [dec.moe.hint],
        "decoder": [dec.token_emb.weight, dec.pos_emb, dec.head_bias, *dec.norm.parameters()],
        **{f"expert_{name}": list(dec.moe.experts[i].parameters()) for i, name in enumerate(EXPERTS)},
    }


def test_gradients_reach_every_component() -> None:
    model = build().train()
    x = batch(b=3)
    out = model(**x)
    loss = sum(v.sum() for k, v in out.items() if v.is_floating_point() and k != "roi_mask_logits")
    loss.backward()
    # experts follow the top-1/top-2 rule in training too: exactly the selected ones learn
    selected = expert_weights(out["expert_probs"].detach(), model.decoder.moe.top1_threshold).ne(0).any(0)
    for name, params in _groups(model).items():
        has_grad = all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
        if name.startswith("expert_"):
            assert has_grad == bool(selected[EXPERTS.index(name[7:])]), name
        else:
            assert has_grad, f"no gradient reaches {name}"
    # the mask-pooled path alone carries the main loss to the SAM-Lite prompts
    assert model.encoder.sam_lite.prompts.grad.abs().sum() > 0


def test_fusion_gates_learn() -> None:
    model = build().train()
    out = model(**batch())
    out["logits"].sum().backward()
    for block in model.encoder.fusion.blocks:
        assert block.gate_attn.grad.abs() > 0 and block.gate_mlp.grad.abs() > 0


def test_roi_mask_loss_reaches_prompts() -> None:
    model = build().train()
    x = batch()
    screen = model.encode_screen(x["image"], x["roi_boxes"], x["roi_valid"])
    roi_mask_loss(screen["roi_mask_logits"], x["roi_boxes"], x["roi_valid"]).backward()
    assert model.encoder.sam_lite.prompts.grad.abs().sum() > 0
    assert model.encoder.backbone.lateral[0].weight.grad.abs().sum() > 0


def test_forward_equals_cached_screen_plus_keystroke(model: KeyPilotModel) -> None:
    model.eval()
    x = batch()
    with torch.no_grad():
        full = model(x["image"], x["input_ids"], x["attention_mask"], x["user_id"], x["prev_layout"])
        screen = model.encode_screen(x["image"])
        step = model.encode_keystroke(screen, x["input_ids"], x["attention_mask"], x["user_id"], x["prev_layout"])
    assert full.keys() == step.keys()
    for key in full:
        torch.testing.assert_close(full[key], step[key], msg=key)


def test_determinism_under_seed() -> None:
    a, b = build(seed=7).eval(), build(seed=7).eval()
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    x = batch()
    with torch.no_grad():
        oa, ob = a(**x), b(**x)
    for key in oa:
        assert torch.equal(oa[key], ob[key]), key


def test_save_and_load_round_trip(tmp_path: Path, model: KeyPilotModel) -> None:
    model.eval()
    model.save_pretrained(tmp_path / "run")
    assert (tmp_path / "run" / "config.yaml").exists() and (tmp_path / "run" / "model.safetensors").exists()
    loaded = KeyPilotModel.from_pretrained(tmp_path / "run")
    assert loaded.config == model.config
    # the output head is tied to the token embedding, and stays tied after loading
    assert loaded.decoder.token_emb.weight.data_ptr() == dict(loaded.named_parameters())["decoder.token_emb.weight"].data_ptr()
    x = batch()
    with torch.no_grad():
        for key, value in model(**x).items():
            assert torch.equal(value, loaded(**x)[key]), key


def test_text_encoder_reads_the_decoders_table_when_shared(tmp_path: Path) -> None:
    own = build()
    config = tiny_config()
    config["model"]["text_encoder"]["shared_embedding"] = True
    shared = KeyPilotModel.from_config(config)
    assert shared.encoder.text_encoder.token_emb is shared.decoder.token_emb
    assert own.encoder.text_encoder.token_emb is not own.decoder.token_emb
    d, hidden = config["model"]["d_model"], config["model"]["text_encoder"]["hidden"]
    assert shared.encoder.text_encoder.token_proj.weight.shape == (hidden, d)

    def count(m: KeyPilotModel) -> int:
        return sum(p.numel() for p in m.parameters())

    # one V x hidden table fewer, one d -> hidden projection more
    assert count(own) - count(shared) == VOCAB * hidden - d * hidden
    shared.save_pretrained(tmp_path / "run")  # safetensors stores the shared table once; loading ties it again
    loaded = KeyPilotModel.from_pretrained(tmp_path / "run")
    assert loaded.encoder.text_encoder.token_emb.weight is loaded.decoder.token_emb.weight
    assert torch.equal(loaded.decoder.token_emb.weight, shared.decoder.token_emb.weight)


def test_pretrained_fails_fast() -> None:
    config = tiny_config()
    config["model"]["pretrained"] = True
    with pytest.raises(ValueError, match="pretrained"):
        KeyPilotModel.from_config(config)


def test_text_padding_is_ignored(model: KeyPilotModel) -> None:
    model.eval()
    x = batch()
    other = x["input_ids"].clone()
    other[0, 7:] = 1  # only padded positions of row 0 change
    with torch.no_grad():
        a = model.encoder.text_encoder(x["input_ids"], x["attention_mask"])
        b = model.encoder.text_encoder(other, x["attention_mask"])
    torch.testing.assert_close(a, b)


def test_personality_rows() -> None:
    p = Personality(num_users=10, dim=4, d_model=8)
    with torch.no_grad():
        p.table.weight.copy_(torch.arange(11.0)[:, None].expand(11, 4))
    p.proj = torch.nn.Identity()  # read the looked-up rows directly
    rows = p(torch.tensor([-1, 0, 9, 10, 23]))[:, 0]
    assert rows.tolist() == [0.0, 1.0, 10.0, 1.0, 4.0]


def test_roi_mask_loss_by_hand() -> None:
    logits = torch.zeros(1, 4, 2, 2)
    logits[0, 0] = torch.tensor([[2.0, -2.0], [2.0, -2.0]])
    boxes = torch.zeros(1, 4, 4)
    boxes[0, 0] = torch.tensor([0.0, 0.0, 0.5, 1.0])  # the left column
    valid = torch.tensor([[True, False, False, False]])
    p = torch.sigmoid(torch.tensor(2.0)).item()
    bce0 = math.log(1 + math.exp(-2))
    dice = 1 - (2 * 2 * p + 1) / (2 + 2 + 1)
    expected = (bce0 + 3 * math.log(2)) / 4 + dice
    assert roi_mask_loss(logits, boxes, valid).item() == pytest.approx(expected, rel=1e-5)
    assert roi_mask_loss(logits, boxes, valid, supervise_absent=False).item() == pytest.approx(bce0 + dice, rel=1e-5)
    assert roi_mask_loss(logits, boxes, torch.zeros(1, 4, dtype=torch.bool)).item() == pytest.approx(
        ((2 * math.log(1 + math.exp(2)) + 2 * bce0) / 4 + 3 * math.log(2)) / 4, rel=1e-5
    )


def test_rasterize_and_boxes_from_masks() -> None:
    boxes = torch.tensor([[[0.25, 0.5, 0.75, 1.0], [0.0, 0.0, 0.0, 0.0]]])
    masks = rasterize_boxes(boxes, 4, 4)
    assert masks[0, 0].tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0]]
    assert masks[0, 1].sum() == 0
    found_boxes, found = boxes_from_masks(masks * 20 - 10)
    assert found.tolist() == [[True, False]]
    torch.testing.assert_close(found_boxes, boxes)


def test_crop_geometry() -> None:
    image = torch.arange(3 * 8 * 8, dtype=torch.float32).view(1, 3, 8, 8) / 192
    boxes = torch.tensor([[[2 / 8, 0.0, 6 / 8, 2 / 8], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5]]])
    valid = torch.tensor([[True, True, False]])
    crops = crop_and_letterbox(image, boxes, valid, size=4)
    assert crops.shape == (1, 3, 3, 4, 4)
    # a 4 x 2 box in a 4 x 4 square: rows 1-2 are the image's rows 0-1, columns 2-5; black bars above and below
    torch.testing.assert_close(crops[0, 0, :, 1:3], image[0, :, 0:2, 2:6])
    assert crops[0, 0, :, 0].abs().sum() == 0 and crops[0, 0, :, 3].abs().sum() == 0
    # the full screen at half size: each output pixel is the mean of a 2 x 2 block (bilinear at the block centre)
    torch.testing.assert_close(crops[0, 1], torch.nn.functional.avg_pool2d(image, 2)[0])
    assert crops[0, 2].abs().sum() == 0  # absent ROI -> black crop


def test_beam_search(model: KeyPilotModel) -> None:
    model.eval()
    x = batch(b=2)
    with torch.no_grad():
        out = model(x["image"], x["input_ids"], x["attention_mask"])
        results = model.generate(out, eos_id=EOS, beam_width=4, num_return=4)
    assert len(results) == 2
    for row in results:
        assert 1 <= len(row) <= 4
        scores = [score for _, score in row]
        assert scores == sorted(scores, reverse=True)
        assert all(len(tokens) <= model.decoder.max_target_tokens and EOS not in tokens for tokens, _ in row)
    with torch.no_grad():  # beam width 1 is greedy decoding
        greedy = model.generate(out, eos_id=EOS, beam_width=1)
    assert greedy[0][0][0][:1] == [out["logits"][0].argmax().item()]

    with torch.no_grad():
        model.decoder.head_bias[EOS] = 50.0  # eos dominates: the best sequence stops at once
        try:
            stopped = model.generate(out, eos_id=EOS, beam_width=5)
        finally:
            model.decoder.head_bias[EOS] = 0.0
    assert stopped[0][0][0] == []

    allowed = torch.zeros(VOCAB, dtype=torch.bool)
    allowed[[7, 8]] = True
    with torch.no_grad():
        constrained = model.generate(out, eos_id=EOS, beam_width=5, num_return=5, allowed_token_mask=allowed)
    assert all(set(tokens) <= {7, 8} for row in constrained for tokens, _ in row)


def test_decode_step_matches_teacher_forcing(model: KeyPilotModel) -> None:
    model.eval()
    x = batch()
    with torch.no_grad():
        out = model(**x)
        prev = x["target_tokens"][:, :2].clamp(min=0)
        step = model.decoder.decode_step(out["h_t"], out["e_task"], out["e_layout"], out["expert_probs"], prev)
    torch.testing.assert_close(step[1:], out["logits"][1:, 2], atol=1e-5, rtol=1e-5)


def test_beam_first_token_mask(model: KeyPilotModel) -> None:
    model.eval()
    x = batch(b=2)
    vocab = model.decoder.token_emb.num_embeddings
    allowed = torch.zeros(vocab, dtype=torch.bool)
    allowed[10:200] = True
    first = torch.zeros(vocab, dtype=torch.bool)
    first[50:60] = True  # and never eos: a candidate cannot be empty
    with torch.no_grad():
        out = model(x["image"], x["input_ids"], x["attention_mask"])
        model.decoder.head_bias[EOS] = 50.0  # eos dominates wherever it is allowed
        try:
            h = out["h_t"], out["e_task"], out["e_layout"], out["expert_probs"]
            results = model.decoder.beam_search(*h, eos_id=EOS, beam_width=4, allowed_token_mask=allowed,
                                                first_token_mask=first)
        finally:
            model.decoder.head_bias[EOS] = 0.0
    for row in results:
        assert row
        for tokens, _ in row:
            assert 50 <= tokens[0] < 60  # the first token obeys the first mask
            assert all(10 <= t < 200 for t in tokens)  # the rest obey the allowed mask
            assert len(tokens) == 1  # then eos, allowed again after the first token


def test_layout_offsets_shift_the_routers_logits_and_are_not_weights() -> None:
    # The decision's per-layout offsets (fitted on validation after training, fit_fusion) are
    # added to the logits as they are, and a checkpoint does not carry them.
    from keypilot.models.routers import LayoutRouter

    torch.manual_seed(0)
    router = LayoutRouter(16, layers=1, heads=2, ffn=32, hysteresis_bias=0.3, switch_threshold=0.8, prior_features=3).eval()
    h, prev, features = torch.randn(4, 16), torch.tensor([0, 1, 2, 3]), torch.rand(4, 3)
    before = router(h, prev, features)
    offsets = torch.tensor([-1.0, 0.0, 2.5, 0.5, -2.0])
    router.logit_offset.copy_(offsets)
    torch.testing.assert_close(router(h, prev, features), before + offsets)
    assert "logit_offset" not in router.state_dict()
