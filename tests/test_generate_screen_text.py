"""The generator's screen_text: the lines it drew, in the image's pixels, read with seeded
recognition noise (ocr_noise), never a password."""

from __future__ import annotations

import dataclasses
import functools
import io
import random
import re
from collections import Counter

from conftest import password_focused
from PIL import Image

from keypilot.data.generate import iter_steps, render_step
from keypilot.data.generate import ocr_noise
from keypilot.data.generate.chrome import Style
from keypilot.data.generate.screen import render
from keypilot.data.generate.sessions import composing_buffer
from keypilot.data.generate.textlines import TextLayer, join_pieces, readable
from keypilot.screen_text import ScreenText, parse_screen_text


@functools.cache
def _all_steps() -> list:
    return list(iter_steps(1500, seed=2))


def _steps(scenario: str, n: int) -> list:
    return [s for s in _all_steps() if s.scenario == scenario][:n]


def _check_boxes(record: dict, data: bytes) -> list[ScreenText]:
    with Image.open(io.BytesIO(data)) as img:
        w, h = img.size
    lines, problems = parse_screen_text(record["screen_text"])
    assert not problems and lines, record["id"]
    for line in lines:
        x0, y0, x1, y1 = line.box
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (record["id"], line, (w, h))
    return lines


def test_pillow_otp_screen_carries_the_banner_code() -> None:
    steps = _steps("otp", 24)
    assert len(steps) >= 12
    found = 0
    for step in steps:
        drawn = _drawn(step)
        code = step.moment.target  # the code the banner shows
        assert code.isdigit() and code in step.screen.banner.body
        assert any(code in t.text for t in drawn), (code, [t.text for t in drawn])  # the banner is drawn over the page
        assert not any(step.screen.title == t.text for t in drawn)  # the banner hides the title bar
        data, record = render_step(step, "pil")
        lines = _check_boxes(record, data)
        found += any(code in t.text for t in lines)
    # after recognition noise the code is still read on most screens (a line drop or a digit misread loses it)
    assert found >= 0.75 * len(steps), (found, len(steps))


def _drawn(step) -> list[ScreenText]:
    m = step.moment
    style = Style.random(random.Random(step.render_seed), step.user)
    return render(step.screen, style, m.context, step.prev_layout if step.keyboard else None, m.candidates,
                  composing_buffer(m), random.Random(0))[2]


def test_chat_title_and_last_message_are_drawn_lines() -> None:
    steps = _steps("chat-en", 12) + _steps("chat-numbers", 12)
    for step in steps:
        texts = [t.text for t in _drawn(step)]
        # the name of the person answered (a long group title shows its tail)
        assert any(step.screen.title.endswith(t) and len(t) >= min(4, len(step.screen.title)) for t in texts), (step.screen.title, texts)
        last_in = [b for b in step.screen.bubbles if not b.mine][-1].text
        assert any(t in last_in for t in texts if len(t) > 3), (last_in, texts)


def _password_typed(step, secret: str = "Sunset2041!"):
    """``step``'s screen with its password field focused while ``secret`` is typed in it (the
    generator makes no such sample: the keyboard predicts nothing there)."""
    return dataclasses.replace(step, screen=password_focused(step.screen),
                               moment=dataclasses.replace(step.moment, context=secret, candidates=[]))


def test_no_sample_in_a_password_field_and_no_password_read() -> None:
    signups = _steps("signup", 60)
    assert signups and not any(s.screen.fields[s.screen.focus].kind == "password" for s in signups)
    filled = [s for s in signups if any(f.kind == "password" and f.value for f in s.screen.fields)]
    assert filled  # filled above the focused phone field
    for step in filled[:6] + [_password_typed(s) for s in filled[:6]]:
        secret = next(f.value for f in step.screen.fields if f.kind == "password") or step.moment.context
        data, record = render_step(step, "pil")
        lines = _check_boxes(record, data)
        texts = [t.text for t in lines]
        assert not any(secret in t for t in texts), (secret, texts)
        assert not any("•" in t and set(t) != {"•"} for t in texts), texts  # dots only, not the last character
        assert any(set(t.text) == {"•"} and len(t.text) == len(secret) for t in _drawn(step))
        kb = record["rois"]["keyboard"]
        if kb:
            assert all((t.box[1] + t.box[3]) / 2 < kb[1] + 4 for t in lines), "nothing is read inside the keyboard"


def test_every_record_carries_lines_inside_its_image() -> None:
    for step in list(iter_steps(40, seed=9))[:40]:
        data, record = render_step(step, "pil")
        _check_boxes(record, data)


def test_text_layer_covers_and_clips() -> None:
    layer = TextLayer()
    layer.add("🙂", (0, 0, 10, 10))  # nothing readable
    layer.add("Hello  there 👋", (0, 0, 50, 10))
    layer.add("under the bar", (0, 20, 50, 30))
    layer.cover((0, 18, 100, 40))
    layer.add("on the bar", (0, 20, 50, 30))
    assert [t.text for t in layer.lines] == ["Hello there", "on the bar"]
    page = TextLayer()
    page.add("half cut", (0, 0, 40, 10))
    page.add("seen", (0, 20, 40, 30))
    layer.paste(page, 0, 100, (0, 106, 100, 200))
    assert layer.lines[-1] == ScreenText("seen", (0, 120, 40, 130)) and len(layer.lines) == 3
    assert readable("↑") == "" and readable("•••") == "•••"
    joined = join_pieces([("Ithink", (0, 0, 30, 10)), ("you left it", (33, 0, 80, 10)), ("9:41", (0, 30, 20, 40))])
    assert [t.text for t in joined] == ["Ithink you left it", "9:41"]


# --- the noise model ---------------------------------------------------------------------

def _corpus() -> list[ScreenText]:
    lines = []
    for i in range(3000):
        code = f"{(i * 7919) % 1_000_000:06d}"
        lines.append(ScreenText(f"Your verification code is {code} please do not share it", (10, 20 * (i % 40), 300, 20 * (i % 40) + 16)))
    return lines


def test_noise_is_deterministic_and_keeps_boxes_in_the_image() -> None:
    lines = _corpus()[:200]
    a = ocr_noise.read(lines, random.Random(5), (320, 820))
    b = ocr_noise.read(lines, random.Random(5), (320, 820))
    c = ocr_noise.read(lines, random.Random(6), (320, 820))
    assert a == b and a != c
    for t in a:
        assert 0 <= t.box[0] < t.box[2] <= 320 and 0 <= t.box[1] < t.box[3] <= 820
        assert abs(t.box[1] - round(t.box[1] / 20) * 20) <= 3.0  # jitter of a few pixels
    clean = ocr_noise.NoiseConfig(0, 0, 0, 0, 0, 0, 0, 0, 0)
    assert ocr_noise.read(lines, random.Random(5), (320, 820), clean) == lines


def test_noise_rates_are_roughly_as_configured() -> None:
    lines = _corpus()
    spaces = lines[0].text.count(" ")
    read = ocr_noise.read(lines, random.Random(11), (320, 820), cfg=ocr_noise.NoiseConfig(split_line=0))
    assert abs(1 - len(read) / len(lines) - ocr_noise.DEFAULT.drop_line) < 0.02  # dropped lines
    # digits are read well: the 6-digit group survives whole in ~97.5% of the lines
    misread = sum(not (re.search(r"\d{6}", t.text) and len(re.findall(r"\d", t.text)) == 6) for t in read) / len(read)
    assert 0.01 < misread < 0.06, misread
    glued = sum(t.text.count(" ") < spaces for t in read) / len(read)
    assert 0.22 < glued < 0.38, glued  # ~30% of the lines lose word spaces
    # letters: look-alike swaps (~0.8% per confusable letter) and dropped characters (~0.3%)
    plain = re.sub(r"\d+", "#", lines[0].text).replace(" ", "")
    changed = sum(re.sub(r"[\d]+", "#", t.text).replace(" ", "") != plain for t in read) / len(read)
    assert 0.15 < changed < 0.45, changed
    split = ocr_noise.read(lines, random.Random(3), (320, 820), cfg=ocr_noise.NoiseConfig(drop_line=0, split_line=0.2))
    assert 0.15 < len(split) / len(lines) - 1 < 0.25
    chinese = [ScreenText("您的验证码已发送，请在今天之内完成", (0, 0, 200, 16))] * 500
    cjk = ocr_noise.read(chinese, random.Random(1), (320, 820), cfg=ocr_noise.NoiseConfig(drop_line=0, split_line=0, confuse_cjk=0.05))
    assert any("巳" in t.text or "己" in t.text or "令" in t.text or "末" in t.text for t in cjk)
