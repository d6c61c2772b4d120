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


def fit_prior_weight(predictor: Any, records: list[Any], batch_size: int = 32) -> dict[str, Any]:
    """Candidate top-5 on ``records`` (corrections and completions) for every beta of the grid.

    Returns ``{"prior_weight": best beta, "learned": the model's beta, "records": n,
    "top5": {beta: accuracy}}``; ties go to the beta closest to the learned one.
    """
    fusion = predictor.fusion
    learned = float(predictor.model.decoder.prior_weight.detach())
    grid = sorted({round(learned * scale, 4) for scale in BETA_SCALES})
    hits = dict.fromkeys(grid, 0)
    scored = 0
    original = fusion.prior_weight
    try:
        for batch in predictor.network_batches([r for r in records if r.task in CANDIDATE_TASKS], batch_size,
                                               suggestions=False):
            for i, record in enumerate(batch.records):
                layout = LAYOUTS[batch.nets[i].layout]
                priors = batch.priors[i]
                prior = getattr(priors, PRIOR_LIST[record.task]).get(layout, []) if priors is not None else []
                logits = batch.first_logits[record.task][i]
                proposals, prefix = proposal_rule(record.task, record.context, priors, layout)
                scored += 1
                for beta in grid:
                    fusion.prior_weight = beta
                    ranked = fusion.rank(logits, prior, layout, TOP_K, proposals, prefix=prefix)
                    hits[beta] += top_k_hit([c.text for c in ranked], record.target, TOP_K)
    finally:
        fusion.prior_weight = original
    top5 = {beta: hits[beta] / scored if scored else 0.0 for beta in grid}
    best = max(grid, key=lambda beta: (top5[beta], -abs(beta - learned)))
    result = {"prior_weight": best, "learned": learned, "records": scored, "top5": top5}
    return result | fit_suggestion_weight(predictor, records, grid, learned, batch_size)


def fit_suggestion_weight(predictor: Any, records: list[Any], grid: list[float], learned: float,
                          batch_size: int = 32) -> dict[str, Any]:
    """Suggestion exact match for every beta of ``grid`` on the suggestion records whose prior
    has copy candidates for the layout shown: ``{"suggestion_weight", "suggestion_records",
    "suggestion_exact"}`` (empty when there is none)."""
    fusion = predictor.fusion
    hits = dict.fromkeys(grid, 0)
    scored = 0
    original = fusion.suggestion_weight
    try:
        for batch in predictor.network_batches([r for r in records if r.task == "suggestion"], batch_size):
            for i, record in enumerate(batch.records):
                layout = LAYOUTS[batch.nets[i].layout]
                copies = batch.priors[i].suggestions.get(layout, []) if batch.priors[i] is not None else []
                if not copies:
                    continue
                scored += 1
                for beta in grid:
                    fusion.suggestion_weight = beta
                    chosen = fusion.suggest(batch.first_logits["suggestion"][i], copies, batch.suggestions.get(i), layout)
                    hits[beta] += chosen is not None and top_k_hit([chosen.text], record.target, 1)
    finally:
        fusion.suggestion_weight = original
    if not scored:
        return {}
    exact = {beta: hits[beta] / scored for beta in grid}
    best = max(grid, key=lambda beta: (exact[beta], -abs(beta - learned)))
    return {"suggestion_weight": best, "suggestion_records": scored, "suggestion_exact": exact}


# Offsets tried for each layout's logit, and the most overall layout accuracy (on the validation
# split) that a better balance between the layouts may cost.
OFFSET_GRID: tuple[float, ...] = tuple(np.arange(-2.0, 3.01, 0.25).round(2).tolist())
OFFSET_SWEEPS = 3
MAX_ACCURACY_COST = 0.01


def fit_layout_offsets(predictor: Any, records: list[Any], batch_size: int = 32) -> dict[str, Any]:
    """Per-layout offsets on the layout router's logits for the validation records' balanced
    accuracy (the mean of the five per-layout accuracies of the layout shown, after hysteresis
    against each record's previous layout), by coordinate ascent over ``OFFSET_GRID``.

    The router is trained on labels where SYM and EMOJI are rare, and its argmax favours the
    common layouts; the per-layout targets weigh every layout alike. An offset set is taken
    only if it costs at most ``MAX_ACCURACY_COST`` of overall accuracy. Returns
    ``{"layout_offsets": {layout: offset}, "layout_fit": {...accuracies before and after}}``.
    """
    router = predictor.model.layout_router
    current = router.logit_offset.detach().cpu()
    logits, prev, labels = [], [], []
    for batch in predictor.network_batches(records, batch_size, suggestions=False):
        logits.append(torch.as_tensor(np.stack([net.layout_logits for net in batch.nets])) - current)
        prev += [LAYOUT_INDEX[r.prev_layout] for r in batch.records]
        labels += [LAYOUT_INDEX[r.layout] for r in batch.records]
    raw = torch.cat(logits).float()
    prev_t, truth = torch.tensor(prev), torch.tensor(labels)
    present = [i for i in range(len(LAYOUTS)) if (truth == i).any()]

    def scores(offsets: np.ndarray) -> tuple[float, float]:
        shown, _ = apply_hysteresis(raw + torch.as_tensor(offsets, dtype=raw.dtype), prev_t, router.hysteresis_bias,
                                    router.switch_threshold)
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
            "layout_fit": {"records": len(labels), "balanced_before": balanced0, "balanced_after": best[0],
                           "accuracy_before": accuracy0, "accuracy_after": best[1]}}


def fit_and_save(run_dir: str | Path, val_records: list[Any], device: str = "cpu") -> dict[str, Any] | None:
    """Fit beta and the layout offsets for the run in ``run_dir`` on ``val_records`` and write
    ``RUN/fusion.json`` (atomically). Nothing to fit (no priors, no candidate records) returns None."""
    from keypilot.inference.predictor import Predictor

    run_dir = Path(run_dir)
    predictor = Predictor.from_pretrained(run_dir, device=device)
    if predictor.priors is None or not any(r.task in CANDIDATE_TASKS for r in val_records):
        return None
    result = fit_prior_weight(predictor, val_records) | fit_layout_offsets(predictor, val_records)
    for key in ("top5", "suggestion_exact"):
        if key in result:
            result[key] = {str(beta): value for beta, value in result[key].items()}
    atomic_write_text(run_dir / FUSION_FILE, json.dumps(result, indent=2) + "\n")
    return result
