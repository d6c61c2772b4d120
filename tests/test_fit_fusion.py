"""The fits run after training on the validation pass's scores (keypilot.inference.fit_fusion)."""

import torch

from keypilot.inference.fit_fusion import (
    MAX_ACCURACY_COST,
    OFFSET_GRID,
    best_weight,
    fit_layout_offsets,
)
from keypilot.labels import LAYOUT_INDEX, LAYOUTS


def test_best_weight_takes_the_most_hits_and_breaks_ties_towards_the_learned_beta() -> None:
    hits = {0.0: 3, 1.0: 7, 2.0: 7, 4.0: 5}
    best, accuracy = best_weight(hits, 10, learned=2.5)
    assert best == 2.0 and accuracy == {0.0: 0.3, 1.0: 0.7, 2.0: 0.7, 4.0: 0.5}
    assert best_weight(hits, 10, learned=0.5)[0] == 1.0


def test_layout_offsets_recover_a_rare_layout_the_argmax_neglects() -> None:
    # 90 EN records the router gets right, and 10 SYM records on which it prefers EN by 0.4.
    en, sym = LAYOUT_INDEX["EN"], LAYOUT_INDEX["SYM"]
    raw = torch.full((100, len(LAYOUTS)), -5.0)
    raw[:90, en], raw[:90, sym] = 2.0, 0.0
    raw[90:, en], raw[90:, sym] = 1.0, 0.6
    truth = torch.tensor([en] * 90 + [sym] * 10)
    prev = torch.full((100,), en)
    fitted = fit_layout_offsets(raw, prev, truth, bias=0.0, threshold=0.5)  # hysteresis off: the argmax

    offsets = fitted["layout_offsets"]
    assert set(offsets.values()) <= set(OFFSET_GRID)
    assert offsets["SYM"] - offsets["EN"] > 0.4  # SYM now wins its records (and EN its own: below)
    fit = fitted["layout_fit"]
    assert fit["balanced_before"] == 0.5 and abs(fit["accuracy_before"] - 0.9) < 1e-6
    assert fit["balanced_after"] == 1.0 and fit["accuracy_after"] == 1.0


def test_layout_offsets_never_cost_more_than_the_bound_of_overall_accuracy() -> None:
    # SYM's 5 records can only be won by losing 20 of the 95 EN records: not taken.
    en, sym = LAYOUT_INDEX["EN"], LAYOUT_INDEX["SYM"]
    raw = torch.full((100, len(LAYOUTS)), -5.0)
    raw[:, en] = 1.0
    raw[:75, sym] = -1.0
    raw[75:, sym] = 0.5
    truth = torch.tensor([en] * 95 + [sym] * 5)
    fitted = fit_layout_offsets(raw, torch.full((100,), en), truth, bias=0.0, threshold=0.5)
    fit = fitted["layout_fit"]
    assert fit["accuracy_after"] >= fit["accuracy_before"] - MAX_ACCURACY_COST
    assert fit["balanced_after"] == fit["balanced_before"] == 0.5
