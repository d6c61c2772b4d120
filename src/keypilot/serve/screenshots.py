"""Screenshots of the page for docs/serving.md, taken in Debian's Chromium.

``python -m keypilot.serve.screenshots --run runs/demo --data runs/demo-data --out docs/img``
serves the run on a free loopback port, finds through the API a sample screen for each
state (a correction in the strip, a completion, a suggestion on an empty field, a layout
switch), then opens that sample in the page and saves a PNG per state, plus three typed by
hand: a misspelt word ("smmart"), the pinyin keyboard with a buffer ("jian"), and an empty
code field under an SMS banner once the screen's text has been read (the code offered before a
key is pressed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from keypilot.serve.live import serving

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling home on a closed network.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
Check = Callable[[dict, dict], bool]
STATES: dict[str, Check] = {
    "correction": lambda sample, answer: answer["shown_kind"] == "correction" and bool(answer["shown"]),
    "completion": lambda sample, answer: answer["shown_kind"] == "completion" and bool(answer["shown"]) and bool(sample["context"]),
    "suggestion": lambda sample, answer: answer["shown_kind"] == "suggestion" and bool(answer["shown"]),
    "layout-switch": lambda sample, answer: answer["layout"] != sample["prev_layout"],
}
# Which sample labels to try first for each state; any sample is tried after them.
PREFERRED_TASK = {"correction": "error_correction", "completion": "auto_completion", "suggestion": "suggestion"}


def find_samples(url: str) -> dict[str, str]:
    """State -> id of the first sample whose answer (on its own context) shows that state."""
    samples = httpx.get(f"{url}/v1/samples").json()["samples"]
    found: dict[str, str] = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        for state, check in STATES.items():
            preferred = [s for s in samples if s["task"] == PREFERRED_TASK.get(state) or s["layout"] != s["prev_layout"]]
            for sample in preferred + samples:
                image = http.get(sample["image_url"]).content
                answer = http.post("/v1/predict", data={"text": sample["context"], "prev_layout": sample["prev_layout"]},
                                   files={"image": ("screen", image)}).json()
                if check(sample, answer):
                    found[state] = sample["id"]
                    break
    return found


def otp_screen_of(data: Path) -> Path | None:
    """The screenshot of the first empty code field under an SMS banner in ``data`` (the
    generator's ``otp`` scenario), if there is one."""
    import json

    for name in ("test.jsonl", "val.jsonl", "train.jsonl"):
        path = data / name
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record.get("scenario") == "otp" and not record.get("context") and record.get("task") == "suggestion":
                return path.parent / record["image"]
    return None


def take(url: str, found: dict[str, str], out: Path, otp_screen: Path | None = None) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        page.goto(url)
        page.wait_for_selector(".sample")
        for state, sample_id in found.items():
            page.click(f".sample[data-id='{sample_id}']")
            _wait_answered(page)
            written.append(_shot(page, out / f"serve-{state}.png"))
        # A misspelt word on an English screen.
        english = page.locator(".sample[data-id^='chat-en'], .sample[data-id^='email']")
        (english.first if english.count() else page.locator(".sample").first).click()
        _wait_answered(page)
        page.fill("#field", "that's so smmart")
        _wait_answered(page)
        written.append(_shot(page, out / "serve-smmart.png"))
        # The code in the SMS banner, offered on the empty code field once the screen is read.
        if otp_screen is not None:
            page.set_input_files("#upload", str(otp_screen))
            _wait_answered(page)
            page.fill("#field", "")
            page.wait_for_timeout(2500)  # the background reading of the new screen
            page.fill("#field", " ")
            _wait_answered(page)
            page.fill("#field", "")
            _wait_answered(page)
            written.append(_shot(page, out / "serve-otp.png"))
        # The pinyin keyboard, chosen with the layout key, with a pinyin buffer being typed.
        page.click(".sample >> nth=0")
        _wait_answered(page)
        layout = page.get_attribute("#keyboard", "data-layout")
        if layout not in ("EN", "ZH"):  # only the EN keyboard has the 中 key
            page.locator(".key[data-act='layout:EN']").dispatch_event("pointerdown")
        if layout != "ZH":
            page.locator(".key[data-act='layout:ZH']").dispatch_event("pointerdown")
        page.fill("#field", "我们明天jian")
        _wait_answered(page)
        written.append(_shot(page, out / "serve-pinyin.png"))
        browser.close()
    return written


def _shot(page, path: Path) -> Path:
    page.screenshot(path=str(path))
    return path


def _wait_answered(page) -> None:
    page.wait_for_function("() => keypilot.state.answeredText === document.getElementById('field').value", timeout=60_000)
    page.wait_for_timeout(300)  # the layout-switch animation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="data set folder (the page's sample screens)")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args(argv)
    with serving(args.run, args.data, screen_text=True) as url:
        found = find_samples(url)
        missing = sorted(set(STATES) - set(found))
        if missing:
            print(f"no sample shows: {', '.join(missing)}", file=sys.stderr)
        for path in take(url, found, args.out, otp_screen_of(args.data)):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
