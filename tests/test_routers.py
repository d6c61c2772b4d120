"""Routing rules against hand-computed cases: task mix, MoE top-1/top-2, layout hysteresis, layout hint."""

from __future__ import annotations

import math

import pytest
import torch

from keypilot.labels import EXPERT_INDEX, LAYOUT_INDEX, LAYOUTS
from keypilot.models.moe import LanguageMoE, expert_weights
from keypilot.models.routers import LayoutRouter, TaskRouter, apply_hysteresis, task_mixture


def test_task_mixture_top1_above_threshold_top2_below() -> None:
    probs = torch.tensor([[0.75, 0.15, 0.10], [0.5, 0.1, 0.4], [0.2, 0.7, 0.1]])
    weights = task_mixture(probs, 0.7)
    torch.testing.assert_close(weights[0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(weights[1], torch.tensor([0.5 / 0.9, 0.0, 0.4 / 0.9]))
    torch.testing.assert_close(weights[2], torch.tensor([0.0, 1.0, 0.0]))  # max == threshold is not "below": top-1


def test_task_router_soft_in_training_rule_at_inference() -> None:
    torch.manual_seed(0)
    router = TaskRouter(d_model=8, hidden=4, mix_threshold=0.7)
    h = torch.randn(5, 8)
    _, probs, e_train = router.train()(h)
    torch.testing.assert_close(e_train, probs @ router.codebook)
    _, probs, e_eval = router.eval()(h)
    torch.testing.assert_close(e_eval, task_mixture(probs, 0.7) @ router.codebook)


def test_expert_weights_top1_and_top2_raw_probabilities() -> None:
    g = torch.tensor([[0.8, 0.1, 0.05, 0.03, 0.02], [0.4, 0.05, 0.35, 0.1, 0.1], [0.12, 0.1, 0.7, 0.04, 0.04]])
    w = expert_weights(g, 0.7)
    torch.testing.assert_close(w[0], torch.tensor([0.8, 0.0, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(w[1], torch.tensor([0.4, 0.0, 0.35, 0.0, 0.0]))  # not renormalised
    torch.testing.assert_close(w[2], torch.tensor([0.12, 0.0, 0.7, 0.0, 0.0]))  # 0.7 is not > 0.7: top-2


def test_moe_mixes_exactly_the_active_experts_and_only_they_learn() -> None:
    torch.manual_seed(0)
    moe = LanguageMoE(d_model=16, router_hidden=8, router_dropout=0.0, heads=2, ffn=32, hint_bias=0.4, top1_threshold=0.7)
    x = torch.randn(2, 4, 16)
    g = torch.tensor([[0.9, 0.05, 0.03, 0.01, 0.01], [0.05, 0.45, 0.05, 0.4, 0.05]])
    z = moe(x, g)
    torch.testing.assert_close(z[0], 0.9 * moe.experts[0](x[:1])[0])
    torch.testing.assert_close(z[1], 0.45 * moe.experts[1](x[1:])[0] + 0.4 * moe.experts[3](x[1:])[0])
    z.sum().backward()
    learned = [all(p.grad is not None for p in expert.parameters()) for expert in moe.experts]
    assert learned == [True, True, False, True, False]
    # over a batch whose rows spread over all five experts, all of them learn
    moe.zero_grad(set_to_none=True)
    g = torch.eye(5) * 0.5 + torch.roll(torch.eye(5), 1, dims=1) * 0.4 + 0.02
    moe(torch.randn(5, 4, 16), g).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in moe.experts.parameters())


def test_layout_hint_raises_the_matching_expert() -> None:
    torch.manual_seed(0)
    moe = LanguageMoE(d_model=16, router_hidden=8, router_dropout=0.0, heads=2, ffn=32, hint_bias=0.4, top1_threshold=0.7)
    h = torch.randn(1, 16)
    base, _ = moe.route(h, h, h, torch.zeros(1, len(LAYOUTS)))
    zh = torch.nn.functional.one_hot(torch.tensor([LAYOUT_INDEX["ZH"]]), len(LAYOUTS)).float()
    hinted, _ = moe.route(h, h, h, zh)
    delta = (hinted - base)[0]
    assert math.isclose(delta[EXPERT_INDEX["ZH"]].item(), 0.4, rel_tol=1e-6)
    assert delta.abs().sum().item() == pytest.approx(0.4, rel=1e-6)
    # EMOJI and NUM sit at different indices in the two orders
    emoji = torch.nn.functional.one_hot(torch.tensor([LAYOUT_INDEX["EMOJI"]]), len(LAYOUTS)).float()
    assert (moe.route(h, h, h, emoji)[0] - base)[0].argmax().item() == EXPERT_INDEX["EMOJI"]


def test_hysteresis_keeps_below_threshold_and_switches_above() -> None:
    prev = torch.tensor([LAYOUT_INDEX["EN"]] * 4)
    zh = LAYOUT_INDEX["ZH"]
    logits = torch.zeros(4, 5)
    logits[0, zh] = 1.5  # ZH against EN alone, EN +0.3: sigmoid(1.5 - 0.3) = 0.77 -> keep EN
    logits[1, zh] = 3.0  # sigmoid(2.7) = 0.94 -> switch
    logits[2, zh] = 0.2  # EN wins only thanks to the bias (0.3 > 0.2): stays EN
    logits[3] = torch.tensor([0.0, 2.5, 2.0, 2.0, 2.0])  # ZH has 34% of all five but beats EN 0.90 to 0.10: switch
    layout, probs = apply_hysteresis(logits, prev, bias=0.3, threshold=0.8)
    for row, z in enumerate((1.5, 3.0)):
        expected = math.exp(z) / (math.exp(z) + math.exp(0.3) + 3)
        assert math.isclose(probs[row, zh].item(), expected, rel_tol=1e-5)
    assert layout.tolist() == [LAYOUT_INDEX["EN"], zh, LAYOUT_INDEX["EN"], zh]
    assert probs[2].argmax().item() == LAYOUT_INDEX["EN"]
    # without the bias row 2 would pick ZH as the argmax
    assert apply_hysteresis(logits, prev, bias=0.0, threshold=0.0)[0][2].item() == zh


def test_layout_router_reads_h_t() -> None:
    torch.manual_seed(0)
    router = LayoutRouter(d_model=16, layers=2, heads=2, ffn=32, hysteresis_bias=0.3, switch_threshold=0.8).eval()
    prev = torch.zeros(2, dtype=torch.long)
    h = torch.randn(2, 16)
    a = router(h, prev)
    assert not torch.allclose(a[0], a[1])  # different h_t, different logits (the causal read-out sees h_t)
    assert not torch.allclose(router(h, torch.ones(2, dtype=torch.long)), a)  # and the previous layout
    assert torch.equal(router.choose(a, None), a.argmax(-1))
