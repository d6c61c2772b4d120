"""KeyPilotLoss against an independent computation of the seed's formulas (numpy, loops)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from keypilot.config import load_config
from keypilot.models.keypilot_model import KeyPilotLoss

LOSS_KEYS = {
    "loss_total", "loss_encoder", "loss_decoder", "loss_align", "loss_contrastive",
    "loss_text", "loss_task", "loss_layout", "loss_consistency", "loss_load",
}


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _info_nce(q: np.ndarray, t: np.ndarray, tau: float) -> float:
    q, t = _normalize(q), _normalize(t)
    total = 0.0
    for i in range(len(q)):
        denominator = sum(math.exp(float(q[i] @ t[j]) / tau) for j in range(len(t)))
        total += -math.log(math.exp(float(q[i] @ t[i]) / tau) / denominator)
    return total / len(q)


def reference_loss(out: dict, tgt: dict, w: dict) -> dict[str, float]:
    """The seed, written out term by term with loops, independent of the implementation."""
    o = {k: v.detach().double().numpy() for k, v in out.items()}
    t = {k: v.numpy() for k, v in tgt.items()}
    tau = w["temperature"]
    align = _info_nce(o["global_feat"], o["text_feat"], tau)
    contrastive = _info_nce(o["roi_feats"].mean(axis=1), o["text_feat"], tau) if "roi_feats" in o else 0.0

    logits, tokens = o["logits"], t["target_tokens"]
    if tokens.ndim == 1:
        tokens = tokens[:, None]
    if logits.ndim == 2:
        logits, tokens = logits[:, None, :], tokens[:, :1]
    per_sample = []
    for b in range(len(tokens)):
        nll = [-math.log(_softmax(logits[b, i])[y]) for i, y in enumerate(tokens[b]) if y != -100]
        if nll:
            per_sample.append(sum(nll) / len(nll))
    text = sum(per_sample) / len(per_sample)

    task = -np.mean([math.log(o["task_probs"][b, y]) for b, y in enumerate(t["target_task"])])
    layout_p = _softmax(o["layout_logits"])
    layout = -np.mean([math.log(layout_p[b, y]) for b, y in enumerate(t["target_layout"])])
    consistency = -np.mean([math.log(layout_p[b, y]) for b, y in enumerate(t["target_type"])])
    f = o["expert_probs"].mean(axis=0)
    load = sum((fi - 1 / 5) ** 2 for fi in f)

    enc = w["lambda_align"] * align + w["lambda_contrastive"] * contrastive
    dec = (text + w["lambda_task"] * task + w["lambda_layout"] * layout
           + w["lambda_consistency"] * consistency + w["lambda_load"] * load)
    return {
        "loss_total": w["lambda_enc"] * enc + w["lambda_dec"] * dec,
        "loss_encoder": enc, "loss_decoder": dec, "loss_align": align,
        "loss_contrastive": contrastive, "loss_text": text, "loss_task": task,
        "loss_layout": layout, "loss_consistency": consistency, "loss_load": load,
    }


def random_batch(seed: int, batch: int = 6, vocab: int = 50, steps: int | None = None, rois: bool = True):
    g = torch.Generator().manual_seed(seed)
    out = {
        "global_feat": torch.randn(batch, 256, generator=g),
        "text_feat": torch.randn(batch, 256, generator=g),
        "logits": torch.randn(batch, vocab, generator=g) * 3 if steps is None
        else torch.randn(batch, steps, vocab, generator=g) * 3,
        "task_probs": torch.softmax(torch.randn(batch, 3, generator=g), -1),
        "layout_logits": torch.randn(batch, 5, generator=g) * 2,
        "expert_probs": torch.softmax(torch.randn(batch, 5, generator=g), -1),
    }
    out["layout_probs"] = torch.softmax(out["layout_logits"], -1)
    if rois:
        out["roi_feats"] = torch.randn(batch, 4, 256, generator=g)
    if steps is None:
        tokens = torch.randint(0, vocab, (batch,), generator=g)
    else:
        tokens = torch.randint(0, vocab, (batch, steps), generator=g)
        lengths = torch.randint(1, steps + 1, (batch,), generator=g)
        tokens[torch.arange(steps)[None, :] >= lengths[:, None]] = -100
    tgt = {
        "target_task": torch.randint(0, 3, (batch,), generator=g),
        "target_layout": torch.randint(0, 5, (batch,), generator=g),
        "target_tokens": tokens,
        "target_type": torch.randint(0, 5, (batch,), generator=g),
    }
    return out, tgt


DEFAULT = load_config("configs/keypilot.yaml")["training"]["loss"]
CUSTOM = dict(lambda_enc=0.45, lambda_dec=1.7, lambda_align=0.6, lambda_contrastive=0.35, lambda_task=0.8,
              lambda_layout=0.25, lambda_consistency=0.15, lambda_load=0.04, temperature=0.11)


@pytest.mark.parametrize(
    "weights, steps, rois",
    [
        (DEFAULT, None, True),   # single-token targets, the seed's weights
        (CUSTOM, None, True),    # non-default weights
        (DEFAULT, 5, True),      # 5-token suggestions with -100 padding (teacher forcing)
        (CUSTOM, 5, False),      # no roi_feats: L_contrastive = 0
    ],
)
def test_matches_independent_computation(weights, steps, rois):
    for seed in range(3):
        out, tgt = random_batch(seed, steps=steps, rois=rois)
        got = KeyPilotLoss(**weights)(out, tgt)
        want = reference_loss(out, tgt, weights)
        assert set(got) == LOSS_KEYS
        for key in LOSS_KEYS:
            assert got[key].item() == pytest.approx(want[key], abs=1e-4, rel=1e-4), key
        if not rois:
            assert got["loss_contrastive"].item() == 0.0


def test_single_token_targets_as_column_vector_match_flat():
    out, tgt = random_batch(7)
    criterion = KeyPilotLoss(**DEFAULT)
    flat = criterion(out, tgt)["loss_text"]
    column = criterion(out, {**tgt, "target_tokens": tgt["target_tokens"][:, None]})["loss_text"]
    assert flat.item() == pytest.approx(column.item(), abs=1e-6)


def test_padding_never_counts():
    out, tgt = random_batch(3, steps=5)
    criterion = KeyPilotLoss(**DEFAULT)
    before = criterion(out, tgt)["loss_text"]
    # Changing logits at padded positions must not change the loss.
    pad = tgt["target_tokens"] == -100
    assert pad.any()
    out["logits"] = out["logits"].clone()
    out["logits"][pad] = torch.randn(int(pad.sum()), out["logits"].shape[-1]) * 50
    assert criterion(out, tgt)["loss_text"].item() == pytest.approx(before.item(), abs=1e-6)


def test_zero_probabilities_stay_finite_and_differentiable():
    out, tgt = random_batch(5)
    task_probs = torch.zeros(6, 3)
    task_probs[:, 0] = 1.0  # the routed probability is exactly 0 for most rows
    out["task_probs"] = task_probs.requires_grad_()
    out["expert_probs"] = torch.eye(5)[torch.zeros(6, dtype=torch.long)].requires_grad_()
    out["layout_logits"] = torch.tensor([[1e4, -1e4, -1e4, -1e4, -1e4]]).repeat(6, 1).requires_grad_()
    del out["layout_probs"]
    loss = KeyPilotLoss(**DEFAULT)(out, tgt)
    for key, value in loss.items():
        assert torch.isfinite(value), key
    loss["loss_total"].backward()
    assert torch.isfinite(out["task_probs"].grad).all()
    assert torch.isfinite(out["layout_logits"].grad).all()


def test_load_balancing_is_zero_when_uniform_and_max_when_collapsed():
    criterion = KeyPilotLoss(**DEFAULT)
    assert criterion.load_balancing_loss(torch.full((4, 5), 0.2)).item() == pytest.approx(0.0, abs=1e-7)
    collapsed = torch.eye(5)[[0, 0, 0, 0]]
    assert criterion.load_balancing_loss(collapsed).item() == pytest.approx(0.8**2 + 4 * 0.2**2)


def test_align_is_low_for_matched_pairs():
    criterion = KeyPilotLoss(**DEFAULT)
    feats = torch.eye(8, 256) * 5
    assert criterion.align(feats, feats).item() < 1e-3
    assert criterion.align(feats, feats.roll(1, dims=0)).item() > 10


def test_bad_temperature_is_rejected():
    with pytest.raises(ValueError, match="temperature"):
        KeyPilotLoss(**{**DEFAULT, "temperature": 0.0})
