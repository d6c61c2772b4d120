"""The fusion of the priors with the network (keypilot.prior_fusion, inference.candidates, models.decoder)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from keypilot.inference.candidates import CandidateFusion, KeystrokeNet, answer
from keypilot.inference.postprocess import Candidate, allowed_tokens, token_classes
from keypilot.prior_fusion import PRIOR_FLOOR, FirstTokens, prior_inputs


@dataclass(frozen=True)
class Cand:  # the fields of keypilot.priors.PriorCandidate that the fusion reads
    text: str
    logp: float
    source: str = "edit"


@dataclass
class Priors:  # the fields of keypilot.priors.KeystrokePriors that the fusion reads
    corrections: dict
    completions: dict
    features: np.ndarray
    suggestions: dict = field(default_factory=dict)
    pinyin_buffer: str = ""


@pytest.fixture(scope="module")
def tokenizer():
    from keypilot.tokenizer import build_tokenizer

    return build_tokenizer(["see you tomorrow", "我们明天见面", "there then the"], vocab_size=32000)


def reference_scores(tokenizer, logits: np.ndarray, prior: list[Cand], layout: str, beta: float) -> dict[str, float]:
    """The fusion written out independently: softmax over the layout's word tokens of
    logits + beta * log(1 + q / floor), then the prior's split among shared first tokens."""
    first = {c.text: tokenizer.encode_target(c.text)[0] for c in prior}
    q: dict[int, float] = {}
    for c in prior:
        q[first[c.text]] = q.get(first[c.text], 0.0) + math.exp(c.logp)
    allowed = np.flatnonzero(allowed_tokens(token_classes(tokenizer, len(logits)), layout, phrase=False))
    fused = logits.astype(np.float64).copy()
    for token, mass in q.items():
        fused[token] += beta * math.log(1 + mass / PRIOR_FLOOR)
    log_z = math.log(sum(math.exp(fused[t]) for t in allowed))
    return {c.text: fused[first[c.text]] - log_z + c.logp - math.log(q[first[c.text]]) for c in prior}


def test_rank_is_the_product_of_experts(tokenizer) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=tokenizer.vocab_size).astype(np.float32)
    prior = [Cand("tomorrow", math.log(0.5)), Cand("the", math.log(0.2)), Cand("there", math.log(0.1)), Cand("then", math.log(0.05))]
    for beta in (0.0, 0.7, 2.0):
        fusion = CandidateFusion(tokenizer, tokenizer.vocab_size, beta)
        ranked = fusion.rank(logits, prior, "EN", count=20, network_proposals=0)
        expected = reference_scores(tokenizer, logits, prior, "EN", beta)
        assert {c.text: c.score for c in ranked} == pytest.approx(expected, abs=1e-6)
        assert [c.score for c in ranked] == sorted((c.score for c in ranked), reverse=True)
        assert all(c.source == "prior" and c.prob == pytest.approx(math.exp(c.score)) for c in ranked)
    # with the prior's weight large, the prior's order wins over flat network scores
    flat = np.zeros(tokenizer.vocab_size, dtype=np.float32)
    ranked = CandidateFusion(tokenizer, tokenizer.vocab_size, 5.0).rank(flat, prior, "EN", count=4, network_proposals=0)
    assert [c.text for c in ranked] == ["tomorrow", "the", "there", "then"]


def test_network_proposals_and_language(tokenizer) -> None:
    fusion = CandidateFusion(tokenizer, tokenizer.vocab_size, 1.0)
    logits = np.zeros(tokenizer.vocab_size, dtype=np.float32)
    see = tokenizer.encode_target("see")[0]
    logits[see] = 30.0  # the network is sure of a word the prior does not offer
    prior = [Cand("tomorrow", math.log(0.9)), Cand("明天", math.log(0.9))]  # the Chinese one is not EN: dropped
    ranked = fusion.rank(logits, prior, "EN", count=5)
    assert ranked[0].text == "see" and ranked[0].source == "network"
    assert "明天" not in [c.text for c in ranked] and "tomorrow" in [c.text for c in ranked]
    zh = fusion.rank(np.zeros(tokenizer.vocab_size, dtype=np.float32), prior, "ZH", count=5, network_proposals=0)
    assert [c.text for c in zh] == ["明天"]


def test_network_proposals_complete_what_is_typed(tokenizer) -> None:
    from keypilot.inference.candidates import proposal_rule

    fusion = CandidateFusion(tokenizer, tokenizer.vocab_size, 1.0)
    logits = np.zeros(tokenizer.vocab_size, dtype=np.float32)
    for word in ("the", "there", "then"):
        logits[fusion.first_token(word)] = 10.0
    priors = Priors(corrections={}, completions={}, features=np.zeros(4, dtype=np.float32))
    proposals, prefix = proposal_rule("auto_completion", "see you th", priors, "EN")
    ranked = [c.text for c in fusion.rank(logits, [], "EN", 5, proposals, prefix=prefix)]
    assert prefix == "th" and ranked and all(t.lower().startswith("th") and t != "th" for t in ranked)
    assert proposal_rule("auto_completion", "see you ", priors, "EN") == (8, "")  # the next word: any
    assert proposal_rule("error_correction", "see you th", priors, "EN")[1] == ""
    priors.pinyin_buffer = "jian"
    assert proposal_rule("auto_completion", "我们jian", priors, "ZH")[0] == 0  # the IME's list alone


def test_prior_inputs_union_padding_and_suggestions(tokenizer) -> None:
    first = FirstTokens(tokenizer)
    priors = Priors(corrections={"EN": [Cand("the", math.log(0.3))]},
                    completions={"EN": [Cand("there", math.log(0.2)), Cand("then", math.log(0.1))],
                                 "ZH": [Cand("明天", math.log(0.6))]},
                    features=np.zeros(4, dtype=np.float32))
    ids, q = prior_inputs(priors, "auto_completion", first, slots=4)
    assert ids.dtype == np.int64 and q.dtype == np.float32 and ids.shape == q.shape == (4,)
    expected: dict[int, float] = {}
    for c in priors.completions["EN"] + priors.completions["ZH"]:
        expected[first(c.text)] = expected.get(first(c.text), 0.0) + math.exp(c.logp)
    got = {int(i): float(m) for i, m in zip(ids, q) if m > 0}
    assert got == pytest.approx(expected)
    assert list(q) == sorted(q, reverse=True)  # largest mass first, padding (q = 0) last
    ids, q = prior_inputs(priors, "suggestion", first, slots=4)
    assert not ids.any() and not q.any()  # no copy candidates: nothing to fuse
    priors.suggestions = {"NUM": [Cand("482913", math.log(0.9), "screen")]}
    ids, q = prior_inputs(priors, "suggestion", first, slots=4)
    assert ids[0] == first("482913") and q[0] == pytest.approx(0.9) and not q[1:].any()
    ids, q = prior_inputs(None, "error_correction", first, slots=4)
    assert not q.any()


def test_answer_uses_the_task_list_and_the_strip(tokenizer) -> None:
    fusion = CandidateFusion(tokenizer, tokenizer.vocab_size, 3.0)
    priors = Priors(corrections={"EN": [Cand("tomorrow", math.log(0.8))]},
                    completions={"EN": [Cand("there", math.log(0.8))]}, features=np.zeros(4, dtype=np.float32))
    asked: list[str] = []

    def first_logits(task: str) -> np.ndarray:
        asked.append(task)
        return np.zeros(tokenizer.vocab_size, dtype=np.float32)

    net = KeystrokeNet(np.array([0.7, 0.2, 0.1]), np.zeros(5), np.full(5, 0.2), 0, np.full(5, 0.2))
    typo = answer(net, "see you tomorow", priors, first_logits, lambda: None, fusion, count=3, full=False)
    assert typo.task == "error_correction" and typo.shown[0] == "tomorrow" and typo.shown_kind == "correction"
    assert asked == ["error_correction"] and typo.completions == []  # full=False decodes the strip's list only
    both = answer(net, "see you tomorow", priors, first_logits, lambda: None, fusion, count=3)
    assert both.corrections[0].text == "tomorrow" and both.completions[0].text == "there"


def test_copy_candidate_competes_with_the_beam(tokenizer) -> None:
    fusion = CandidateFusion(tokenizer, tokenizer.vocab_size, 2.0)
    beam = Candidate("see you", 0.5, -0.7, "network")
    flat = np.zeros(tokenizer.vocab_size, dtype=np.float32)
    # A code on the screen with most of the prior's mass beats a beam the network is unsure of...
    code = [Cand("482913", math.log(0.95), "screen")]
    assert fusion.suggest(flat, code, beam, "NUM").text == "482913"
    assert fusion.suggest(flat, code, beam, "EN") is beam  # ...only in its own layout's language
    # ...and loses to a beam whose first token the network is sure of.
    sure = flat.copy()
    sure[fusion.first_token("see you")] = 40.0
    assert fusion.suggest(sure, [Cand("hello", math.log(0.5), "screen")], beam, "EN") is beam
    # The suggestion's own beta (fitted on the validation split) decides how far the copy is trusted.
    fusion.suggestion_weight = 50.0
    assert fusion.suggest(sure, [Cand("hello", math.log(0.5), "screen")], beam, "EN").text == "hello"
    fusion.suggestion_weight = fusion.prior_weight
    assert fusion.suggest(flat, [], None, "EN") is None

    net = KeystrokeNet(np.array([0.1, 0.1, 0.8]), np.zeros(5), np.full(5, 0.2), 4, np.full(5, 0.2))  # NUM shown
    priors = Priors(corrections={}, completions={}, features=np.zeros(4, dtype=np.float32),
                    suggestions={"NUM": code})
    asked: list[str] = []

    def first_logits(task: str) -> np.ndarray:
        asked.append(task)
        return flat

    out = answer(net, "", priors, first_logits, lambda: Candidate("123", 0.1, -2.3, "network"), fusion, count=3)
    assert out.suggestion.text == "482913" and out.shown[0] == "482913" and asked[0] == "suggestion"


def test_model_fuses_the_prior_at_the_first_token() -> None:
    import torch

    from keypilot.config import load_config
    from keypilot.models.keypilot_model import KeyPilotModel

    config = load_config("configs/tiny.yaml")
    config["model"]["prior_features"] = 4
    torch.manual_seed(0)
    model = KeyPilotModel.from_config(config).eval()
    b, length = 2, 6
    args = (torch.rand(b, 3, 256, 128), torch.randint(5, 1000, (b, length)), torch.ones(b, length, dtype=torch.long))
    targets = torch.tensor([[7, 8, -100, -100, -100], [9, -100, -100, -100, -100]])
    features = torch.rand(b, 4)
    ids = torch.tensor([[7, 11, 0], [12, 0, 0]])
    q = torch.tensor([[0.5, 0.25, 0.0], [0.9, 0.0, 0.0]])
    with torch.no_grad():
        plain = model(*args, target_tokens=targets, prior_features=features)["logits"]
        fused = model(*args, target_tokens=targets, prior_features=features, prior_ids=ids, prior_q=q)["logits"]
    boost = torch.zeros_like(plain[:, 0])
    boost.scatter_add_(-1, ids, torch.log1p(q / PRIOR_FLOOR))
    assert torch.allclose(fused[:, 0], plain[:, 0] + boost, atol=1e-5)
    assert torch.equal(fused[:, 1:], plain[:, 1:])  # only the first token is fused
    # the learned weight and the routers' feature inputs get gradients
    model.train()
    out = model(*args, target_tokens=targets, prior_features=features, prior_ids=ids, prior_q=q)
    torch.nn.functional.cross_entropy(out["logits"][:, 0], targets[:, 0]).add(out["task_logits"].sum()).backward()
    assert model.decoder.prior_weight.grad is not None and model.decoder.prior_weight.grad.abs() > 0
    assert model.task_router.mlp[0].weight.grad[:, -4:].abs().sum() > 0
    with pytest.raises(ValueError, match="prior features have width 3"):
        model(*args, prior_features=torch.rand(b, 3))
