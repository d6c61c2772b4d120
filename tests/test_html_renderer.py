"""The HTML renderer in Debian's Chromium: what the page shows is the step, the ROI boxes are
the DOM's, the pixels are stable, and a data set drawn by it is valid records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import password_focused

from keypilot.data.generate.html.browser import unavailable_reason

REASON = unavailable_reason()
if REASON:
    pytest.skip(f"HTML renderer unavailable: {REASON}", allow_module_level=True)

from keypilot.data.format import read_records  # noqa: E402
from keypilot.data.generate import generate_dataset, iter_steps  # noqa: E402
from keypilot.data.generate.html import HtmlRenderer  # noqa: E402
from keypilot.data.generate.sessions import composing_buffer  # noqa: E402

pytestmark = pytest.mark.browser


def test_html_data_set_is_valid(tmp_path: Path) -> None:
    # First in the module: one Playwright per process, and the page fixture below holds one.
    counts = generate_dataset(tmp_path / "h", 16, seed=3, workers=1, progress=False, renderer="html")
    assert sum(counts.values()) == 16
    records = read_records(tmp_path / "h")  # raises on any bad record, image or ROI
    assert len(records) == 16 and {r.renderer for r in records} == {"html"}
    lines = [json.loads(line) for split in ("train", "val", "test") for line in (tmp_path / "h" / f"{split}.jsonl").read_text().splitlines()]
    assert all(line["rois"]["input_field"] is not None for line in lines)
    assert all(r.screen_text for r in records)  # every screen shows some text, boxes checked by read_records


@pytest.fixture(scope="module")
def renderer():
    r = HtmlRenderer()
    yield r
    r.close()


def _draw(renderer: HtmlRenderer, step, layout: str | None):
    m = step.moment
    return renderer.render(step.session, step.render_seed, step.screen, step.user, True, m.context, layout,
                           m.candidates, composing_buffer(m), False)


def test_the_page_shows_the_step(renderer: HtmlRenderer) -> None:
    steps = [s for s in iter_steps(80, seed=4) if s.moment.context and s.screen.app == "chat"][:3]
    assert steps
    for step in steps:
        for layout in ("EN", "NUM", "EMOJI"):
            img, rois, _ = _draw(renderer, step, layout)
            shown = renderer.browser.page.evaluate(
                "() => [document.querySelector('.kbd').dataset.layout,"
                " [...document.querySelectorAll('.pane')].filter(p => getComputedStyle(p).display !== 'none').map(p => p.dataset.pane),"
                " document.querySelector('.field.focused .val').textContent]")
            assert shown[0] == layout and shown[1] == [layout]
            # the field shows the typed text (or its scrolled tail) in the page's own text
            assert step.moment.context.strip()[-3:] in shown[2]
            assert img.height > img.width
            for key in ("input_field", "keyboard", "title_bar"):
                x0, y0, x1, y1 = rois[key]
                assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height, (key, rois[key], img.size)
            assert rois["keyboard"][1] >= rois["input_field"][3] - 1  # the field sits above the keys
        _, hidden, _ = _draw(renderer, step, None)
        assert hidden["keyboard"] is None and hidden["input_field"] is not None


def test_same_step_same_pixels(renderer: HtmlRenderer) -> None:
    a, b = list(iter_steps(12, seed=5))[:2]
    first, _, _ = _draw(renderer, a, "ZH")
    _draw(renderer, b, "EN")  # another session in between
    again, _, _ = _draw(renderer, a, "ZH")
    assert first.tobytes() == again.tobytes()


def test_screen_text_comes_from_the_dom(renderer: HtmlRenderer) -> None:
    steps = [s for s in iter_steps(1000, seed=2) if s.scenario == "otp"][:4]
    assert steps
    for step in steps:
        # without a keyboard the SMS banner shows whatever the look (with one it may turn into an autofill chip)
        img, rois, lines = _draw(renderer, step, None)
        code = step.moment.target
        assert any(code in t.text for t in lines), (code, [t.text for t in lines])
        for t in lines:
            x0, y0, x1, y1 = t.box
            assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height, (t, img.size)
        # device pixels: the banner line's box is as tall as text at the screenshot's density
        code_line = next(t for t in lines if code in t.text)
        assert 8 <= code_line.box[3] - code_line.box[1] <= img.height / 15
        _, with_keys, keyed = _draw(renderer, step, "NUM")
        kb = with_keys["keyboard"]
        assert all((t.box[1] + t.box[3]) / 2 < kb[1] for t in keyed), "the keyboard area is not read"


def test_password_text_is_dots_only(renderer: HtmlRenderer) -> None:
    # A filled password above the focused field, and the same field focused while typed (the
    # generator makes no sample there: the keyboard predicts nothing in a password field).
    steps = [s for s in iter_steps(1500, seed=2) if s.scenario == "signup" and any(f.kind == "password" and f.value for f in s.screen.fields)][:2]
    assert steps
    for step in steps:
        m = step.moment
        password = next(f.value for f in step.screen.fields if f.kind == "password")
        for screen, typed, masked in ((step.screen, m.context, False), (password_focused(step.screen), password, True)):
            _, _, lines = renderer.render(step.session, step.render_seed, screen, step.user, True, typed, "EN",
                                          [], composing_buffer(m) if not masked else "", masked)
            texts = [t.text for t in lines]
            assert "•" * len(password) in texts  # the dots, not the last character the field still shows
            assert not any(password in t or ("•" in t and set(t) != {"•"}) for t in texts), texts
