"""Fit the fusion's prior weight (beta) on the validation split and store it in the run.

The model learns beta with the rest of its weights, but what maximises the training loss's
likelihood is not quite what ranks a keyboard's five candidates best, so beta is refitted:
the network runs once over the validation records (first-token logits of both candidate
tasks under the layout shown), then candidate top-5 accuracy is computed for each beta of
a grid around the learned one, and the best beta goes to ``RUN/fusion.json``, which both
predictors and the export read. The suggestion's copy candidates (a code, an amount on the
screen) compete with the decoder's beam under their own beta, fitted the same way on the
validation suggestions that have copy candidates (exact match of the suggestion).

The layout router's decision is refitted the same way: one offset per layout on its logits,
chosen for the validation split's balanced accuracy (every layout weighs alike, whatever its
share of the labels) at a bounded cost in overall accuracy (``fit_layout_offsets``). The
predictors and the export add them to the router's logits (``LayoutRouter.logit_offset``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from keypilot.atomic import atomic_write_text
from keypilot.evaluation.metrics import top_k_hit
from keypilot.inference.candidates import proposal_rule
from keypilot.labels import LAYOUT_INDEX, LAYOUTS
from keypilot.models.routers import apply_hysteresis
from keypilot.prior_fusion import CANDIDATE_TASKS, PRIOR_LIST
from keypilot.run_folder import FUSION_FILE

# Multiples of the learned beta tried on the validation split: 0 is the network's ranking alone,
# and the large ones come close to the prior's own order with the network breaking its ties.
BETA_SCALES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0)
TOP_K = 5


def best_weight(hits: dict[float, int], scored: int, learned: float) -> tuple[float, dict[float, float]]:
    """The beta of ``hits`` (beta -> records hit) with the best accuracy, ties going to the one
    closest to ``learned``; and the accuracy of every beta."""
    accuracy = {beta: count / scored if scored else 0.0 for beta, count in hits.items()}
    return max(hits, key=lambda beta: (accuracy[beta], -abs(beta - learned))), accuracy


class ValidationPass:
    """What every fit needs, gathered in one pass of the network over the validation records.

    For each beta of ``grid``: how many candidate records (corrections, completions) have their
    target in the top 5 of the fused list, and how many suggestion records whose prior has copy
    candidates for the layout shown get exactly their target. For the layout fit: the router's
    raw logits (without the offsets the model was loaded with), each record's previous layout
    and its label.
    """

    def __init__(self, predictor: Any, records: list[Any], grid: list[float], batch_size: int = 32) -> None:
        fusion = predictor.fusion
        self.candidate_hits, self.candidates = dict.fromkeys(grid, 0), 0
        self.suggestion_hits, self.suggestions = dict.fromkeys(grid, 0), 0
        current = predictor.model.layout_router.logit_offset.detach().cpu()
        logits, prev, labels = [], [], []
        original = fusion.prior_weight, fusion.suggestion_weight
        try:
            for batch in predictor.network_batches(records, batch_size):
                for i, record in enumerate(batch.records):
                    layout = LAYOUTS[batch.nets[i].layout]
                    priors = batch.priors[i]
                    if record.task in CANDIDATE_TASKS:
                        self.candidates += 1
                        prior = getattr(priors, PRIOR_LIST[record.task]).get(layout, []) if priors is not None else []
                        proposals, prefix = proposal_rule(record.task, record.context, priors, layout)
                        for beta in grid:
                            fusion.prior_weight = beta
                            ranked = fusion.rank(batch.first_logits[record.task][i], prior, layout, TOP_K, proposals,
                                                 prefix=prefix)
                            self.candidate_hits[beta] += top_k_hit([c.text for c in ranked], record.target, TOP_K)
                    copies = priors.suggestions.get(layout, []) if priors is not None else []
                    if record.task == "suggestion" and copies:
                        self.suggestions += 1
                        for beta in grid:
                            fusion.suggestion_weight = beta
                            chosen = fusion.suggest(batch.first_logits["suggestion"][i], copies,
                                                    batch.suggestions.get(i), layout)
                            self.suggestion_hits[beta] += chosen is not None and top_k_hit([chosen.text], record.target, 1)
                logits.append(torch.as_tensor(batch.arrays["layout_logits"]) - current)
                prev += [LAYOUT_INDEX[r.prev_layout] for r in batch.records]
                labels += [LAYOUT_INDEX[r.layout] for r in batch.records]
        finally:
            fusion.prior_weight, fusion.suggestion_weight = original
        self.layout_logits = torch.cat(logits).float()
        self.prev_layout, self.layout = torch.tensor(prev), torch.tensor(labels)


def fit_prior_weights(scores: ValidationPass, learned: float) -> dict[str, Any]:
    """beta for the candidates (candidate top-5) and for the suggestion's copy candidates (exact
    match; only when some validation suggestion has copy candidates). Returns ``{"prior_weight",
    "learned", "records", "top5": {beta: accuracy}}`` plus ``{"suggestion_weight",
    "suggestion_records", "suggestion_exact"}``."""
    best, top5 = best_weight(scores.candidate_hits, scores.candidates, learned)
    result = {"prior_weight": best, "learned": learned, "records": scores.candidates, "top5": top5}
    if scores.suggestions:
        best, exact = best_weight(scores.suggestion_hits, scores.suggestions, learned)
        result |= {"suggestion_weight": best, "suggestion_records": scores.suggestions, "suggestion_exact": exact}
    return result


# Offsets tried for each layout's logit, and the most overall layout accuracy (on the validation
# split) that a better balance between the layouts may cost.
OFFSET_GRID: tuple[float, ...] = tuple(np.arange(-2.0, 3.01, 0.25).round(2).tolist())
OFFSET_SWEEPS = 3
MAX_ACCURACY_COST = 0.01


def fit_layout_offsets(raw: torch.Tensor, prev_layout: torch.Tensor, truth: torch.Tensor, bias: float,
                       threshold: float) -> dict[str, Any]:
    """Per-layout offsets on the layout router's raw logits ``N x 5`` for the validation records'
    balanced accuracy (the mean of the five per-layout accuracies of the layout shown, after
    hysteresis with ``bias`` and ``threshold`` against each record's previous layout ``N``;
    labels ``truth`` ``N``), by coordinate ascent over ``OFFSET_GRID``.

    The router is trained on labels where SYM and EMOJI are rare, and its argmax favours the
    common layouts; the per-layout targets weigh every layout alike. An offset set is taken
    only if it costs at most ``MAX_ACCURACY_COST`` of overall accuracy. Returns
    ``{"layout_offsets": {layout: offset}, "layout_fit": {...accuracies before and after}}``.
    """
    present = [i for i in range(len(LAYOUTS)) if (truth == i).any()]

    def scores(offsets: np.ndarray) -> tuple[float, float]:
        shown, _ = apply_hysteresis(raw + torch.as_tensor(offsets, dtype=raw.dtype), prev_layout, bias, threshold)
        hit = shown == truth
        return float(np.mean([hit[truth == i].float().mean() for i in present])), float(hit.float().mean())

    offsets = np.zeros(len(LAYOUTS))
    balanced0, accuracy0 = scores(offsets)
    best = (balanced0, accuracy0)
    for _ in range(OFFSET_SWEEPS):
        for i in range(len(LAYOUTS)):
            for value in OFFSET_GRID:
                trial = offsets.copy()
                trial[i] = value
                balanced, accuracy = scores(trial)
                if accuracy >= accuracy0 - MAX_ACCURACY_COST and balanced > best[0] + 1e-9:
                    offsets, best = trial, (balanced, accuracy)
    return {"layout_offsets": dict(zip(LAYOUTS, offsets.round(2).tolist())),
            "layout_fit": {"records": len(truth), "balanced_before": balanced0, "balanced_after": best[0],
                           "accuracy_before": accuracy0, "accuracy_after": best[1]}}


def fit_and_save(run_dir: str | Path, val_records: list[Any], device: str = "cpu") -> dict[str, Any] | None:
    """Fit beta and the layout offsets for the run in ``run_dir`` on ``val_records`` and write
    ``RUN/fusion.json`` (atomically). Nothing to fit (no priors, no candidate records) returns None."""
    from keypilot.inference.predictor import Predictor

    run_dir = Path(run_dir)
    predictor = Predictor.from_pretrained(run_dir, device=device)
    if predictor.priors is None or not any(r.task in CANDIDATE_TASKS for r in val_records):
        return None
    learned = float(predictor.model.decoder.prior_weight.detach())
    grid = sorted({round(learned * scale, 4) for scale in BETA_SCALES})
    scores = ValidationPass(predictor, val_records, grid)
    router = predictor.model.layout_router
    result = fit_prior_weights(scores, learned) | fit_layout_offsets(
        scores.layout_logits, scores.prev_layout, scores.layout, router.hysteresis_bias, router.switch_threshold)
    for key in ("top5", "suggestion_exact"):
        if key in result:
            result[key] = {str(beta): value for beta, value in result[key].items()}
    atomic_write_text(run_dir / FUSION_FILE, json.dumps(result, indent=2) + "\n")
    return result
