"""The generator's record fields beyond the labels (renderer, scenario), the fallback to Pillow,
the per-renderer / per-scenario grouping of the evaluation, and the layout-stability rule."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from keypilot.data.format import DataFormatError, read_records
from keypilot.data.generate import generate_dataset, writer
from keypilot.data.generate.html import browser
from keypilot.evaluation.metrics import grouped_scores
from keypilot.labels import LAYOUT_INDEX, LAYOUTS


@pytest.fixture
def no_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    writer.html_unavailable.cache_clear()
    yield
    writer.html_unavailable.cache_clear()


def test_without_chromium_mixed_falls_back_to_pillow(no_chromium: None, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    generate_dataset(tmp_path / "d", 12, seed=1, workers=1, progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Pillow" in err[0] and "/nonexistent/chromium" in err[0]
    records = read_records(tmp_path / "d")
    assert len(records) == 12 and {r.renderer for r in records} == {"pil"}


def test_without_chromium_html_is_a_clear_error(no_chromium: None, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="--renderer html.*unavailable"):
        generate_dataset(tmp_path / "d", 4, renderer="html", progress=False)
    with pytest.raises(ValueError, match="--renderer must be one of"):
        generate_dataset(tmp_path / "d", 4, renderer="svg", progress=False)


def test_renderer_of_is_fixed_per_session_and_near_the_share() -> None:
    picks = [writer.renderer_of(0, i, "mixed") for i in range(2000)]
    assert picks == [writer.renderer_of(0, i, "mixed") for i in range(2000)]
    assert 0.37 < picks.count("html") / len(picks) < 0.47
    assert {writer.renderer_of(0, i, "pil") for i in range(50)} == {"pil"}


def _write(tmp_path: Path, **extra: object) -> Path:
    from PIL import Image

    (tmp_path / "images").mkdir(exist_ok=True)
    Image.new("RGB", (20, 40)).save(tmp_path / "images" / "a.png")
    record = {"id": "a", "image": "images/a.png", "context": "hi", "task": "auto_completion", "target": "hello",
              "layout": "EN", **extra}
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return path


def test_renderer_and_scenario_fields(tmp_path: Path) -> None:
    record = read_records(_write(tmp_path, renderer="html", scenario="chat-en"))[0]
    assert (record.renderer, record.scenario) == ("html", "chat-en")
    record = read_records(_write(tmp_path, renderer="my-phone", scenario="logs"))[0]  # any string is fine
    assert (record.renderer, record.scenario) == ("my-phone", "logs")
    assert read_records(_write(tmp_path))[0].renderer is None
    with pytest.raises(DataFormatError, match=r"d\.jsonl:1: renderer must be a string, got int"):
        read_records(_write(tmp_path, renderer=3))
    with pytest.raises(DataFormatError, match=r"d\.jsonl:1: scenario must be a string, got list"):
        read_records(_write(tmp_path, scenario=["otp"]))


def test_grouped_scores_per_renderer_and_scenario() -> None:
    def rec(renderer: str | None, scenario: str, layout: str, target: str) -> SimpleNamespace:
        return SimpleNamespace(renderer=renderer, scenario=scenario, task="auto_completion", layout=layout, target=target)

    records = [rec("pil", "otp", "NUM", "123"), rec("pil", "chat-en", "EN", "hello"), rec("html", "otp", "NUM", "456"),
               rec(None, "otp", "EN", "hi")]
    preds = [{"task": "auto_completion", "layout": "NUM", "completions": ["123"]},
             {"task": "suggestion", "layout": "EN", "completions": ["help", "hello"]},
             {"task": "auto_completion", "layout": "EN", "completions": ["4"]},
             {"task": "auto_completion", "layout": "EN", "completions": ["hi"]}]
    groups = grouped_scores(records, preds)
    pil, html, unknown = (groups["per_renderer"][k] for k in ("pil", "html", "unknown"))
    assert (pil["n"], pil["task_accuracy"], pil["layout_accuracy"], pil["top1"], pil["top5"]) == (2, 0.5, 1.0, 0.5, 1.0)
    assert (html["n"], html["layout_accuracy"], html["top5"]) == (1, 0.0, 0.0)
    assert unknown["n"] == 1
    assert groups["per_scenario"]["otp"]["n"] == 3 and groups["per_scenario"]["chat-en"]["top1"] == 0.0
    assert grouped_scores([SimpleNamespace(task="suggestion", layout="EN", target="x")], [{"layout": "EN"}]) == {}


def test_whole_sessions_hold_every_keystroke_state_in_order() -> None:
    from keypilot.data.generate import iter_steps

    steps = list(iter_steps(120, seed=2, whole_sessions=True))
    assert len(steps) == 120
    sessions: dict[str, list] = {}
    for s in steps:
        sessions.setdefault(s.session, []).append(s)
    assert max(len(v) for v in sessions.values()) > 5  # a picked session has at most 5 steps
    for v in sessions.values():
        assert [s.step for s in v] == list(range(len(v)))
        assert all(b.prev_layout == a.moment.layout for a, b in zip(v, v[1:]))


def test_layout_rule_on_a_session_ignores_flicker_and_takes_clear_switches() -> None:
    """Replayed along a session as the keyboard does it: small leads of another layout (the raw
    router's flicker) are ignored; a clear lead over the previous layout switches, even when the
    router spreads probability over the other layouts (the five-way rule never switched here)."""
    from keypilot.evaluation.evaluate import chained_hysteresis
    from keypilot.models.routers import apply_hysteresis

    def shown(logits, prev: str) -> str:
        out, _ = apply_hysteresis(torch.tensor(logits)[None].float(), torch.tensor([LAYOUT_INDEX[prev]]), 0.3, 0.8)
        return LAYOUTS[int(out[0])]

    en, zh, sym, emoji, num = range(5)
    rows = []
    for lead in (0.6, -0.2, 0.8, -0.1):  # EN and SYM trade the argmax by less than a logit
        row = [0.0] * 5
        row[sym] = lead
        rows.append(row)
    rows += [[0.0, 2.4, 1.5, 1.5, 1.5]] * 3  # ZH: 30% of all five, 0.9 against EN alone
    records = [SimpleNamespace(session="s", step=i, prev_layout="EN", layout="EN" if i < 4 else "ZH") for i in range(7)]
    import numpy as np

    logits = np.array(rows)
    layouts = chained_hysteresis({"s": list(range(7))}, records, logits, shown)
    assert layouts == ["EN"] * 4 + ["ZH"] * 3
    raw = [LAYOUTS[int(i)] for i in logits.argmax(axis=1)]
    assert sum(a != b for a, b in zip(["EN"] + raw, raw)) == 5  # the raw router switched five times, one was needed
