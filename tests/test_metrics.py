"""Metrics against values computed by hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from keypilot.evaluation import metrics


def rec(task: str, target: str, layout: str = "EN", prev: str = "EN", session: str | None = None,
        step: int | None = None, lang: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(task=task, target=target, layout=layout, prev_layout=prev, session=session,
                           step=step, lang=lang, context="")


def test_confusion_and_accuracy() -> None:
    true = ["EN", "ZH", "ZH", "NUM"]
    pred = ["EN", "EN", "ZH", "NUM"]
    m = metrics.confusion_matrix(true, pred, ["EN", "ZH", "NUM"])
    assert m == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert metrics.accuracy(true, pred) == 0.75
    assert metrics.accuracy([], []) is None


def test_char_f1() -> None:
    # "abcd" vs "abxy": overlap 2, precision 2/4, recall 2/4 -> 0.5
    assert metrics.char_f1("abcd", "abxy") == pytest.approx(0.5)
    # spaces are ignored; "ab" vs "abcd": precision 1, recall 0.5 -> 2/3
    assert metrics.char_f1("a b", "abcd") == pytest.approx(2 / 3)
    assert metrics.char_f1("", "") == 1.0
    assert metrics.char_f1("x", "y") == 0.0


def test_retrieval_recall() -> None:
    image = np.eye(3)
    # text 0 matches image 0; text 1 is closest to image 2 and text 2 to image 1.
    text = np.array([[1.0, 0, 0], [0, 0.2, 1.0], [0, 1.0, 0.2]])
    r = metrics.retrieval_recall(image, text, ks=(1, 2))
    assert r["image_to_text_R@1"] == pytest.approx(1 / 3)
    assert r["image_to_text_R@2"] == pytest.approx(1.0)
    assert r["text_to_image_R@1"] == pytest.approx(1 / 3)


def test_expert_alignment_maps_layout_to_expert_order() -> None:
    # EXPERTS order is EN, ZH, SYM, NUM, EMOJI; layout NUM is expert 3, EMOJI expert 4.
    probs = np.array([[0.9, 0, 0, 0.1, 0], [0, 0, 0, 0.8, 0.2], [0, 0, 0, 0.6, 0.4]])
    assert metrics.expert_alignment(probs, ["EN", "NUM", "EMOJI"]) == pytest.approx(2 / 3)


def test_switches_with_and_without_hysteresis() -> None:
    records = [rec("auto_completion", "a", layout=l, prev="EN", session="s", step=i)
               for i, l in zip([2, 0, 1, 3], ["EN", "ZH", "ZH", "EN"])]
    sessions = metrics.group_sessions(records)
    assert sessions == {"s": [1, 2, 0, 3]}  # ordered by step
    raw = ["EN", "ZH", "EN", "ZH"]        # by index; in step order: ZH EN EN ZH
    smoothed = ["EN", "ZH", "EN", "EN"]   # in step order: ZH EN EN EN
    s = metrics.switch_summary(sessions, records, raw, smoothed)
    # from prev EN: raw EN->ZH->EN->EN->ZH = 3 switches; smoothed EN->ZH->EN->EN->EN = 2
    assert s["switches_per_session_raw"] == 3
    assert s["switches_per_session_hysteresis"] == 2
    assert s["switch_reduction"] == pytest.approx(1 / 3)
    # truth in step order ZH ZH EN EN: raw right 2/4 (ZH, EN), smoothed right 3/4
    assert s["accuracy_cost"] == pytest.approx(0.5 - 0.75)


def test_score_predictions() -> None:
    records = [rec("error_correction", "the"), rec("auto_completion", "tomorrow"),
               rec("auto_completion", "见面", layout="ZH"), rec("suggestion", "ok!")]
    predictions = [
        {"task": "error_correction", "layout": "EN", "corrections": ["tea", "the"], "completions": [], "suggestion": None},
        {"task": "auto_completion", "layout": "EN", "corrections": [], "completions": ["tomorrow"], "suggestion": None},
        {"task": "suggestion", "layout": "EN", "corrections": [], "completions": ["见"], "suggestion": None},
        {"task": "suggestion", "layout": "EN", "corrections": [], "completions": [], "suggestion": "ok"},
    ]
    s = metrics.score_predictions(records, predictions)
    assert s["task_accuracy"] == 0.75
    assert s["layout_accuracy"] == 0.75
    assert s["per_task"]["error_correction"] == {"n": 1, "top1": 0.0, "top5": 1.0}
    assert s["per_task"]["auto_completion"]["top1"] == 0.5
    assert s["per_language"]["ZH"]["top5"] == 0.0
    assert s["suggestion"]["exact_match"] == 0.0
    assert s["suggestion"]["char_f1"] == pytest.approx(0.8)  # 2 of 2 predicted, 2 of 3 wanted
    assert s["candidates"]["top5"] == 0.5


def test_not_predicted_fields_give_no_metric() -> None:
    s = metrics.score_predictions([rec("error_correction", "the")], [{"corrections": ["the"]}])
    assert "task_accuracy" not in s and "layout_accuracy" not in s
    assert s["per_task"]["error_correction"]["top1"] == 1.0


def test_on_screen_numbers_counts_only_targets_printed_on_the_screen() -> None:
    from keypilot.screen_text import ScreenText

    banner = [ScreenText("Your code is 482 913", (10, 10, 300, 40))]
    code = rec("suggestion", "482913", layout="NUM", lang="NUM")
    code.screen_text = banner
    amount = rec("auto_completion", "37.50", layout="NUM", lang="NUM")
    amount.screen_text = banner  # not on this screen: not counted
    word = rec("suggestion", "hello")
    word.screen_text = banner
    predictions = [{"suggestion": "482913"}, {"completions": ["37.5"]}, {"suggestion": "hi"}]
    assert metrics.on_screen_numbers([code, amount, word], predictions) == {"n": 1, "top1": 1.0, "top5": 1.0}
    assert metrics.on_screen_numbers([code], [{"suggestion": "123"}])["top1"] == 0.0
    assert metrics.on_screen_numbers([amount], [{"completions": []}]) is None
