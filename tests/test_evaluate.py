"""evaluate() end to end on a hand-made data set, the report's verdict, and the keystroke simulation."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from keypilot.evaluation.report import TEXT_ONLY, screenshot_verdict
from keypilot.evaluation.simulate import (
    apply_candidate,
    goal_text,
    simulate,
    typing_path,
)

MODEL_KEYS = {"n", "task_accuracy", "task_confusion", "layout_accuracy", "layout_confusion", "layout_raw_accuracy",
              "per_task", "per_language", "candidates", "suggestion", "retrieval", "expert_alignment",
              "layout_switches", "keystrokes", "timing_ms"}
BASELINES = {TEXT_ONLY, "SymSpell", "n-gram", "keep previous layout", "text rule"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def test_evaluate_writes_every_output(tmp_path: Path) -> None:
    from test_predictor import make_dataset, make_run

    from keypilot.evaluation.evaluate import evaluate

    run, data = make_run(tmp_path), make_dataset(tmp_path / "data", num=10)
    out = tmp_path / "eval"
    metrics = evaluate(run, data, out, baselines=True, simulate_records=2)
    assert {"predictions.jsonl", "metrics.json", "report.md"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8")) == json.loads(json.dumps(metrics))
    assert MODEL_KEYS <= set(metrics["model"])
    # The records have no screen_text: the recogniser read their screens, so the channel-off row is there.
    assert metrics["screen_text_recognised"] == 10
    assert set(metrics["baselines"]) == BASELINES | {"model, screen-text channel off"}
    assert metrics["model"]["layout_switches"]["sessions"] == 2
    assert set(metrics["model"]["retrieval"]) == {"image_to_text_R@1", "image_to_text_R@5",
                                                  "text_to_image_R@1", "text_to_image_R@5"}
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 10
    assert set(rows[0]) == {"id", "task", "layout", "layout_raw", "corrections", "completions", "suggestion", "shown"}
    report = (out / "report.md").read_text(encoding="utf-8")
    for image in ("layout_confusion.png", "task_confusion.png", "accuracy_task.png"):
        assert f"]({image})" in report and (out / image).stat().st_size > 0
    assert "Does the screenshot help?" in report and "| SymSpell |" in report
    # SymSpell fixes "teh" on the same records the model is scored on
    assert metrics["baselines"]["SymSpell"]["per_task"]["error_correction"]["top1"] == 1.0


def test_evaluate_limit_and_bad_data(tmp_path: Path) -> None:
    from test_predictor import make_dataset, make_run

    from keypilot.data.format import DataFormatError
    from keypilot.evaluation.evaluate import evaluate

    run, data = make_run(tmp_path), make_dataset(tmp_path / "data", num=6)
    metrics = evaluate(run, data, tmp_path / "eval", max_records=3, simulate_records=0)
    assert metrics["model"]["n"] == 3 and metrics["model"]["layout_switches"]["sessions"] == 1
    bad = tmp_path / "data" / "bad.jsonl"
    bad.write_text('{"id": "x", "image": "images/none.png", "context": "", "task": "typo", "target": "a", "layout": "EN"}\n')
    with pytest.raises(DataFormatError, match="bad.jsonl:1"):
        evaluate(run, bad, tmp_path / "eval-bad")


def test_screenshot_verdict_is_honest_both_ways() -> None:
    def system(acc: float) -> dict:
        return {"n": 400, "task_accuracy": acc, "layout_accuracy": 0.5}

    assert screenshot_verdict(system(0.9), system(0.5)).startswith("The screenshot helps: task acc +40.0 pts")
    assert screenshot_verdict(system(0.5), system(0.9)).startswith("The screenshot does not help")
    assert "no difference beyond noise" in screenshot_verdict(system(0.51), system(0.5))


def rec(task: str, context: str, target: str, layout: str = "EN", prev: str = "EN") -> SimpleNamespace:
    return SimpleNamespace(task=task, context=context, target=target, layout=layout, prev_layout=prev, image=None,
                           user_id=None)


def test_typing_paths() -> None:
    assert typing_path("see you to", "see you tomo") == ["see you to", "see you tom", "see you tomo"]
    # a wrong last word is deleted back to the common prefix, then retyped
    assert typing_path("I saw teh", "I saw the") == ["I saw teh", "I saw te", "I saw t", "I saw th", "I saw the"]
    # Chinese: pinyin letters, then one commit key; a started buffer is kept
    assert typing_path("我们明天jian", "我们明天见面") == [
        "我们明天jian", "我们明天jianm", "我们明天jianmi", "我们明天jianmia", "我们明天jianmian", "我们明天见面"]
    assert goal_text(rec("error_correction", "I saw teh", "the")) == "I saw the"
    assert goal_text(rec("auto_completion", "我们明天jian", "见面")) == "我们明天见面"
    assert apply_candidate("I saw teh", "the", "correction") == "I saw the"
    assert apply_candidate("see you to", "tomorrow", "completion") == "see you tomorrow"
    assert apply_candidate("", "Sounds good!", "suggestion") == "Sounds good!"


class FakePredictor:
    """Shows "tomorrow" once "tomo" is typed; always shows layout EN."""

    def predict(self, image, text, prev_layout="EN", user_id=None, full=True) -> SimpleNamespace:
        shown = ["tomorrow"] if text.endswith("tomo") else ["nope"]
        return SimpleNamespace(shown=shown, shown_kind="completion", layout="EN")


def test_simulation_counts_by_hand() -> None:
    records = [rec("auto_completion", "see you to", "tomorrow"), rec("auto_completion", "ok ", "42", layout="NUM")]
    result = simulate(FakePredictor(), records).to_dict()
    # plain: "morrow" (6) + "42" (2) = 8; with the strip: m, o, tap (3) + 2 = 5
    assert result["plain_keystrokes"] == 8 and result["model_keystrokes"] == 5
    assert result["candidate_taps"] == 1
    assert result["keystroke_savings"] == pytest.approx(3 / 8)
    # the NUM record needs a layout tap on both keyboards (prev EN, fake shows EN)
    assert result["plain_layout_taps"] == 1 and result["model_layout_taps"] == 1
    assert simulate(FakePredictor(), records, max_records=1).to_dict()["records"] == 1
