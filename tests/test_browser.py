"""End to end in Debian's Chromium: the page against a live server with a tiny real model.

With an untrained model the predicted layout is arbitrary, so the switching mechanics are
checked deterministically: the keyboard drawn must be the layout the API answered, the next
request must send it as prev_layout, and an answer with another layout must redraw the keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian chromium is not installed (/usr/bin/chromium); `make browser-deps` installs it as root", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

from conftest import make_tiny_run  # noqa: E402

from keypilot.serve.live import serving  # noqa: E402
from keypilot.serve.screenshots import CHROMIUM_ARGS  # noqa: E402

pytestmark = pytest.mark.browser

KEY_LABELS = {  # one key every drawing of that layout has
    "EN": "q", "ZH": "q", "SYM": "@", "EMOJI": "😂", "NUM": "5",
}


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Iterator[str]:
    run, data = make_tiny_run(tmp_path_factory.getbasetemp() / "serve-tiny")
    with serving(run, data) as url:
        yield url


@pytest.fixture(scope="module")
def page(server_url: str) -> Iterator[sync_api.Page]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server_url)
        yield page
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def wait_answered(page: sync_api.Page) -> dict:
    """Wait until the shown answer is the one for the field's current text; return it."""
    page.wait_for_function("() => keypilot.state.answeredText === document.getElementById('field').value", timeout=15_000)
    return page.evaluate("() => keypilot.state.lastAnswer")


def drawn_layout(page: sync_api.Page) -> str:
    return page.get_attribute("#keyboard", "data-layout")


def shown_candidates(answer: dict) -> list[str]:
    return list(dict.fromkeys(text for text in answer["shown"] if text.strip()))


def test_pick_type_accept(page: sync_api.Page) -> None:
    page.wait_for_selector(".sample")
    page.click(".sample >> nth=0")
    answer = wait_answered(page)
    assert drawn_layout(page) == answer["layout"]
    assert page.is_visible("#shot")

    page.fill("#field", "")
    page.click("#field")
    page.keyboard.type("see you to")  # the physical keyboard
    answer = wait_answered(page)
    assert drawn_layout(page) == answer["layout"]
    candidates = shown_candidates(answer)
    assert candidates, "the model's answer should give the strip something to show"
    assert page.locator("#strip .cand").all_inner_texts() == candidates
    assert page.locator("#layout-probs .lp").count() == 5
    assert re.search(r"model [\d.]+ ms", page.inner_text("#timing"))

    before = page.input_value("#field")
    first = page.locator("#strip .cand").first
    cand, kind = first.inner_text(), first.get_attribute("data-kind")
    first.dispatch_event("pointerdown")
    expected = page.evaluate("([t, c, k, l]) => keypilot.applyCandidate(t, c, k, l)", [before, cand, kind, drawn_layout(page)])
    assert page.input_value("#field") == expected != before
    assert cand in expected


def test_onscreen_keys_type_and_delete(page: sync_api.Page) -> None:
    # Hold the model's answers back, so that no layout switch lands between two key presses.
    page.route("**/v1/predict", lambda route: route.fulfill(status=503, json={"detail": "held by the test", "code": "held"}))
    try:
        if drawn_layout(page) != "EN":
            page.locator(".key[data-act='layout:EN']").dispatch_event("pointerdown")
        assert drawn_layout(page) == "EN"
        page.fill("#field", "")
        for key in ("h", "i"):
            page.locator(f".key[data-key='{key}']").dispatch_event("pointerdown")
        assert page.input_value("#field") == "hi"
        page.locator(".key[data-act='backspace']").dispatch_event("pointerdown")
        assert page.input_value("#field") == "h"
        page.locator(".key[data-act='layout:EMOJI']").dispatch_event("pointerdown")
        assert drawn_layout(page) == "EMOJI"
        page.locator(".key[data-key='❤️']").dispatch_event("pointerdown")
        assert page.input_value("#field") == "h❤️"
        page.locator(".key[data-act='backspace']").dispatch_event("pointerdown")  # one grapheme, two code points
        assert page.input_value("#field") == "h"
        page.wait_for_selector("#error:not([hidden])")  # the held answer is reported, not drawn
        assert drawn_layout(page) == "EMOJI"
    finally:
        page.unroute("**/v1/predict")


def test_layout_follows_the_api(page: sync_api.Page) -> None:
    """Each answer's layout is drawn, and sent back as prev_layout with the next keystroke."""
    order = ["NUM", "EMOJI", "ZH", "SYM", "EN"]
    sent: list[str] = []

    def relay(route: sync_api.Route) -> None:
        body = (route.request.post_data_buffer or b"").decode("utf-8", "replace")
        fields = dict(re.findall(r'name="(\w+)"\r\n\r\n([^\r]*)\r\n', body))
        sent.append(fields["prev_layout"])
        answer = route.fetch().json()
        step = re.fullmatch(r"step (\d)", fields["text"])
        # The real model's answer, with a layout we choose for the test's own keystrokes.
        answer["layout"] = order[int(step.group(1))] if step else fields["prev_layout"]
        route.fulfill(status=200, content_type="application/json", body=json.dumps(answer))

    page.route("**/v1/predict", relay)
    try:
        previous = drawn_layout(page)
        for i, layout in enumerate(order):
            keys_before = page.inner_html("#keyboard")
            page.fill("#field", f"step {i}")
            wait_answered(page)
            assert drawn_layout(page) == layout
            assert sent[-1] == previous, "prev_layout must be the layout shown when the key was typed"
            assert page.locator(f".key[data-key='{KEY_LABELS[layout]}']").count() == 1
            assert page.inner_html("#keyboard") != keys_before
            assert page.inner_text("#switch-note") == f"keyboard switched {previous} → {layout}"
            previous = layout
    finally:
        page.unroute("**/v1/predict")


def test_candidate_rules(page: sync_api.Page) -> None:
    cases = [
        (["See you tomo", "tomorrow", "completion"], "EN", "See you tomorrow "),
        (["See you ", "tomorrow", "completion"], "EN", "See you tomorrow "),
        (["I am goign ", "going", "correction"], "EN", "I am going "),
        (["I am goign", "going", "correction"], "EN", "I am going "),
        (["", "Sounds good!", "suggestion"], "EN", "Sounds good!"),
        (["我们明天jian", "见面", "completion"], "ZH", "我们明天见面"),
        (["路上小新", "小心", "correction"], "ZH", "路上小心"),
        (["my code is ", "482913", "completion"], "NUM", "my code is 482913 "),
    ]
    for args, layout, expected in cases:
        result = page.evaluate("(args) => keypilot.applyCandidate(...args)", [*args, layout])
        assert result == expected, (args, result)


def test_stale_answers_are_dropped(page: sync_api.Page) -> None:
    """An answer that comes back after the field changed again is never drawn."""
    held: list[sync_api.Route] = []

    def hold_old_text(route: sync_api.Route) -> None:
        body = (route.request.post_data_buffer or b"").decode("utf-8", "replace")
        if "old text" in body:
            held.append(route)  # answered below, after the newer request
        else:
            route.continue_()

    page.route("**/v1/predict", hold_old_text)
    try:
        page.fill("#field", "old text")
        page.wait_for_function("() => keypilot.state.inflight !== null")
        while not held:
            page.wait_for_timeout(20)
        page.fill("#field", "new text")
        answer = wait_answered(page)
        stale = dict(answer, layout="NUM" if answer["layout"] != "NUM" else "EMOJI", shown=["stale"])
        try:
            held[0].fulfill(status=200, content_type="application/json", body=json.dumps(stale))
        except sync_api.Error:
            pass  # the page already aborted that request: dropped either way
        page.wait_for_timeout(300)
        assert page.evaluate("() => keypilot.state.answeredText") == "new text"
        assert drawn_layout(page) == answer["layout"]
        assert "stale" not in page.locator("#strip .cand").all_inner_texts()
    finally:
        page.unroute("**/v1/predict")
