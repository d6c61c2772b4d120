"""The priors: built from a tiny training split with small lexicons (seconds), then queried
the way a keyboard does at every keystroke."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from keypilot.labels import LAYOUTS
from keypilot.priors import FEATURE_NAMES, NUM_FEATURES, PRIORS_DIR, KeystrokePriors, Priors, build_priors
from keypilot.priors.screen import read_screen, typed_field
from keypilot.screen_text import ScreenText

SOURCES = {"edit", "lexicon", "ngram", "pinyin", "homophone", "emoji", "symbol", "number", "screen"}


def _r(context: str, task: str, target: str) -> SimpleNamespace:
    return SimpleNamespace(context=context, task=task, target=target)


TRAIN = [
    _r("Hello Teresa, I wan", "auto_completion", "wanted"),
    _r("Hello Teresa, I wanted to ", "auto_completion", "ask"),
    _r("See you tomo", "auto_completion", "tomorrow"),
    _r("ok see you ", "auto_completion", "tomorrow"),
    _r("sure, see you ", "auto_completion", "tomorrow"),
    _r("Is it raining", "auto_completion", "?"),
    _r("Are you coming", "auto_completion", "?"),
    _r("Is he there", "auto_completion", "?"),
    _r("Hey Kenneth", "auto_completion", ","),
    _r("My email is tom@", "auto_completion", "gmail.com"),
    _r("haha 😂", "auto_completion", "😂"),
    _r("so cute ", "auto_completion", "😍"),
    _r("Thanks for the coffe", "error_correction", "coffee"),
    _r("我们明天jian", "auto_completion", "见"),
    _r("王总，您好！ganxienin", "auto_completion", "感谢您"),
    _r("谢谢你的yusan", "auto_completion", "雨伞"),
    _r("我们谈论这个得", "error_correction", "的"),
    _r("明天见，陆上", "error_correction", "路上"),
    _r("我到了", "auto_completion", "。"),
    _r("好的", "auto_completion", "，"),
    _r("你什么时候到", "auto_completion", "？"),
    _r("37.5", "auto_completion", "37.50"),
    _r("", "suggestion", "Sure, see you then!"),
]

BAD_INPUTS = {
    "empty": "",
    "spaces": "   \n\t ",
    "10k characters": ("Hello wrld 你好 😂 123 " * 600)[:10_000],
    "mixed scripts": "Hola мир 你好 world مرحبا שלום こんにちは 안녕 niha",
    "emoji only": "😂👍🏻❤️‍🔥🇨🇳👨‍👩‍👧‍👦",
    "digits only": "0123456789" * 3,
    "control characters": "hel\x00lo\x07 wo\x1brld\x7f\r\n\x0c",
    "lone surrogates": "abc\ud800def\udfff",
    "odd unicode": "e\u0301\u200b\u200e\u202e\ufeff\U0010ffff\ufffd\u0000\uffff\U000e0001",
    "full-width": "ＡＢＣ１２３，。！",
    "apostrophes only": "'''’’",
    "pinyin-like junk": "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
    "long cjk": "我" * 500,
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / PRIORS_DIR
    summary = build_priors(TRAIN, out, progress=False, en_words=5000, zh_words=30000)
    assert summary["records"] == len(TRAIN) and summary["bytes"] > 0
    return out


@pytest.fixture(scope="module")
def priors(built: Path) -> Priors:
    return Priors.load(built)


def _texts(candidates) -> list[str]:
    return [c.text for c in candidates]


def _check_well_formed(out: KeystrokePriors) -> None:
    assert isinstance(out, KeystrokePriors)
    assert out.features.shape == (NUM_FEATURES,) and out.features.dtype == np.float32
    assert np.all(np.isfinite(out.features)) and out.features.min() >= 0 and out.features.max() <= 1
    for lists in (out.corrections, out.completions):
        assert set(lists) <= set(LAYOUTS)
        for candidates in lists.values():
            assert len(candidates) == len(set(_texts(candidates)))
            assert sum(math.exp(c.logp) for c in candidates) <= 1 + 1e-6
            for c in candidates:
                assert c.text and c.source in SOURCES and math.isfinite(c.logp) and c.logp <= 1e-9
                c.text.encode("utf-8")  # no lone surrogates
                assert all(ch.isprintable() or ch in "\u200d\ufe0f\u20e3" for ch in c.text)
    assert isinstance(out.pinyin_buffer, str)


# -- English -------------------------------------------------------------------------------------
@pytest.mark.parametrize("context, want", [
    ("I don'r", "don't"),
    ("Pretty gud", "good"),
    ("Thsnks", "Thanks"),  # the user's capital is kept
    ("THSNKS", "THANKS"),
    ("I will see you tomorow", "tomorrow"),
    ("Thanks for the coffe", "coffee"),
])
def test_english_corrections(priors: Priors, context: str, want: str) -> None:
    out = priors.propose(context)
    assert want in _texts(out.corrections["EN"])[:5]
    assert all(c.source == "edit" for c in out.corrections["EN"])
    assert out.feature("p_typo") > 0.5


def test_a_correct_word_is_probably_not_a_typo(priors: Priors) -> None:
    out = priors.propose("I want")
    assert out.feature("word_in_lexicon") == 1 and out.feature("p_typo") < 0.5


def test_english_completions_keep_the_users_case(priors: Priors) -> None:
    assert {"want", "wanted"} & set(_texts(priors.propose("Hello Teresa, I wan").completions["EN"])[:5])
    capital = _texts(priors.propose("Bu").completions["EN"])
    assert "But" in capital[:5] and all(w.startswith("Bu") for w in capital)
    assert all(w.isupper() for w in _texts(priors.propose("THA").completions["EN"]))


def test_next_word_comes_from_the_training_ngram(priors: Priors) -> None:
    out = priors.propose("See you ")
    assert _texts(out.completions["EN"])[0] == "tomorrow"
    assert out.completions["EN"][0].source == "ngram"
    assert "gmail.com" in _texts(priors.propose("write to ann@gm").completions["EN"])


# -- Chinese -------------------------------------------------------------------------------------
@pytest.mark.parametrize("context, buffer, want", [
    ("我们明天jian", "jian", "见"),  # after Chinese text
    ("ganxie", "ganxie", "感谢"),  # full pinyin, field start
    ("今天jintia", "jintia", "今天"),  # last syllable still being typed
    ("zf", "zf", "做法"),  # initials only
    ("不好意思buhys", "buhys", "不好意思"),  # a mix
    ("去xi'an", "xi'an", "西安"),  # an apostrophe separates syllables
    ("王总，您好！ganxienin", "ganxienin", "感谢您"),  # a training target joins the lexicon
])
def test_pinyin_buffers(priors: Priors, context: str, buffer: str, want: str) -> None:
    out = priors.propose(context)
    assert out.pinyin_buffer == buffer
    assert want in _texts(out.completions["ZH"])[:5]
    assert out.feature("pinyin_open") == 1 and out.feature("ime_candidates") == 1
    assert priors.in_ime_dictionary(want)


def test_a_long_buffer_becomes_a_sentence(priors: Priors) -> None:
    out = priors.propose("woxianghuijia")
    assert out.pinyin_buffer == "woxianghuijia" and _texts(out.completions["ZH"])[0] == "我想回家"
    assert not priors.in_ime_dictionary("我想回家")  # composed from 我想 + 回家, not a lexicon word


def test_english_words_are_not_pinyin_buffers(priors: Priors) -> None:
    out = priors.propose("I said hello")
    assert out.pinyin_buffer == "" and not out.completions.get("ZH")
    assert out.feature("pinyin_open") == 0
    assert priors.propose("我们明天jian").feature("pinyin_after_cjk") == 1


@pytest.mark.parametrize("context, certain", [
    ("我们明天jian", True),  # follows a Chinese character
    ("今天 wans", True),
    ("ganxie", True),  # whole syllables, no English word starts with them
    ("she", False),  # an English word
    ("ganxie hen", False),  # Latin text before it
    ("我们明天Jian", False),  # a capital: not typed into an IME
    ("hello 明天jian", True),
])
def test_pinyin_certain(priors: Priors, context: str, certain: bool) -> None:
    out = priors.propose(context)
    assert out.pinyin_certain is certain
    assert out.feature("pinyin_certain") == certain
    assert not certain or out.pinyin_buffer


@pytest.mark.parametrize("context, want", [("我们谈论这个得", "的"), ("明天见，陆上", "路上"), ("那很号", "好")])
def test_homophone_corrections(priors: Priors, context: str, want: str) -> None:
    out = priors.propose(context)
    assert want in _texts(out.corrections["ZH"])[:5]
    assert all(c.source == "homophone" and len(c.text) <= 3 for c in out.corrections["ZH"])


def test_next_word_after_chinese_text(priors: Priors) -> None:
    out = priors.propose("我们明天")
    assert out.completions["ZH"] and all(c.source == "ngram" for c in out.completions["ZH"])


def test_in_ime_dictionary(priors: Priors) -> None:
    assert priors.in_ime_dictionary("感谢") and priors.in_ime_dictionary("见")
    assert not priors.in_ime_dictionary("感谢你们大家好") and not priors.in_ime_dictionary("hello")
    assert not priors.in_ime_dictionary(None)  # type: ignore[arg-type]


# -- symbols, emoji, numbers ---------------------------------------------------------------------
def test_emoji_keywords_in_english_and_chinese(priors: Priors) -> None:
    assert "🍕" in _texts(priors.propose("Want some pizza").completions["EMOJI"])[:5]
    assert "🎂" in _texts(priors.propose("祝你生日快乐").completions["EMOJI"])[:5]


def test_emoji_already_in_the_text_come_first(priors: Priors) -> None:
    assert _texts(priors.propose("haha 😂").completions["EMOJI"])[0] == "😂"
    assert _texts(priors.propose("在的❤️‍🔥").completions["EMOJI"])[0] == "❤️‍🔥"
    assert len(priors.propose("").completions["EMOJI"]) == 16  # a default order when nothing is known


def test_symbols_follow_what_precedes(priors: Priors) -> None:
    assert "?" in _texts(priors.propose("Is she there").completions["SYM"])[:3]
    assert {"。", "，"} & set(_texts(priors.propose("我到家了").completions["SYM"])[:3])


def _chat_screen() -> list[ScreenText]:
    """A chat under an SMS banner, as the generator or the recogniser gives it (720 x 1280)."""
    return [ScreenText("10:42", (20, 5, 80, 30)), ScreenText("Messages · now", (40, 60, 300, 90)),
            ScreenText("Your verification code is 482913. Do not share it.", (40, 95, 680, 125)),
            ScreenText("Rosalind Baker", (220, 150, 520, 190)),
            ScreenText("Hey, what's the room number?", (30, 600, 400, 640)),
            ScreenText("Sure, one sec", (430, 680, 690, 720)),
            ScreenText("Type a message", (30, 900, 300, 940))]


def test_numbers_from_the_screen_and_amounts(priors: Priors) -> None:
    out = priors.propose("48", screen=_chat_screen())
    assert out.completions["NUM"][0].text == "482913" and out.completions["NUM"][0].source == "screen"
    assert out.feature("screen_extends_typed") == 1
    assert "37.50" in _texts(priors.propose("37.5").completions["NUM"])


def _signup_screen(typed: str) -> list[ScreenText]:
    """A sign-up form (360 x 640): labels above fields, the e-mail field being typed in."""
    return [ScreenText("9:41", (20, 8, 52, 23)), ScreenText("Create account", (120, 45, 240, 65)),
            ScreenText("Full name", (18, 96, 70, 108)), ScreenText("Ana Lima", (30, 120, 100, 139)),
            ScreenText("Email", (19, 160, 49, 172)), ScreenText(typed, (30, 186, 90, 200)),
            ScreenText("手机号", (18, 225, 60, 240)), ScreenText("请输入手机号", (28, 248, 119, 267)),
            ScreenText("Next", (168, 362, 192, 383))]


def test_the_field_being_typed_in_is_read_from_its_label(priors: Priors) -> None:
    reading = read_screen(_signup_screen("guiying"), (360, 640))
    assert ("guiying", "email") in reading.fields and ("请输入手机号", "number") in reading.fields
    out = priors.propose("guiying", screen=reading)
    assert out.feature("field_email") == 1 and out.feature("field_number") == 0
    assert not out.pinyin_certain  # pinyin syllables, but an e-mail address's
    assert typed_field(reading, "guiyinglin") == "email"  # the screenshot is a few keys behind
    assert typed_field(reading, "gu1ying") == "email"  # a recognition error
    assert typed_field(reading, "Ana Lima") == ""  # no label of a known kind
    assert priors.propose("guiying", screen=read_screen(_signup_screen("Ana"), (360, 640))).feature("field_email") == 0
    assert priors.propose("", screen=reading).feature("field_email") == 0


def test_reply_set_answers_similar_messages(tmp_path: Path) -> None:
    from keypilot.priors.replies import ReplyPriors, build_replies

    pairs = [("Can you call me?", "Calling now!"), ("Can you call me later?", "Calling now!"),
             ("Can you call me?", "Sent!"), ("明天几点见？", "十点吧"), ("What time tomorrow?", "Ten?")]
    summary = build_replies(pairs, tmp_path)
    assert summary == {"reply_messages": 4, "reply_pairs": 5}
    replies = ReplyPriors(tmp_path)
    got = replies.suggest("can you CALL me??", 5)
    assert got[0].text == "Calling now!" and got[0].source == "reply" and sum(math.exp(c.logp) for c in got) <= 1 + 1e-9
    assert replies.suggest("明天几点见", 5)[0].text == "十点吧"
    assert replies.suggest("completely unrelated words", 5) == [] and replies.suggest("", 5) == []


def test_next_character_class(priors: Priors) -> None:
    probs = priors.next_class.probs("你好")
    assert set(probs) == {"latin", "cjk", "digit", "emoji", "symbol"} and sum(probs.values()) == pytest.approx(1, abs=1e-6)
    assert probs["cjk"] > probs["latin"]
    out = priors.propose("你好")
    assert out.feature("next_symbol") == pytest.approx(probs["symbol"]) and out.feature("next_digit") == pytest.approx(probs["digit"])


def test_screen_copy_candidates_for_an_empty_field(priors: Priors) -> None:
    out = priors.propose("", screen=_chat_screen())
    # The code beside "verification code" comes before the clock, before a key is pressed.
    assert out.suggestions["NUM"][0].text == "482913"
    assert _texts(out.suggestions["NUM"]).index("10:42") > 0
    assert out.reply_to == "Hey, what's the room number?" and out.feature("reply_open") == 1
    assert out.feature("screen_read") == 1 and out.feature("screen_code_near") == 1
    typed = priors.propose("See you Ros", screen=_chat_screen())
    assert typed.completions["EN"][0].text == "Rosalind" and not typed.suggestions and not typed.reply_to
    blind = priors.propose("")
    assert not blind.suggestions.get("NUM") and blind.feature("screen_read") == 0


def test_screen_reading_groups_wrapped_bubbles_and_normalises_numbers() -> None:
    lines = [ScreenText("Call me on", (30, 500, 300, 530)), ScreenText("138 1234 5678 tonight", (30, 534, 330, 564)),
             ScreenText("ok", (600, 620, 690, 650)), ScreenText("Message", (30, 900, 200, 930))]
    reading = read_screen(lines)
    assert reading.reply_to == "Call me on 138 1234 5678 tonight"
    assert "13812345678" in reading.numbers and reading.numbers["13812345678"] > 2
    assert read_screen([]).reply_to == "" and not read_screen(None).has_text


# -- features ------------------------------------------------------------------------------------
def test_feature_vector(priors: Priors) -> None:
    assert len(FEATURE_NAMES) == NUM_FEATURES and len(set(FEATURE_NAMES)) == NUM_FEATURES
    from keypilot.config import load_config
    assert load_config("tiny")["model"]["prior_features"] == NUM_FEATURES  # the configs read every feature
    empty = priors.propose("")
    assert empty.feature("field_empty") == 1 and empty.features[1:7].sum() == 0
    assert priors.propose("hello ").feature("last_space") == 1
    assert priors.propose("hello").feature("last_latin") == 1
    assert priors.propose("你好").feature("last_cjk") == 1
    assert priors.propose("12").feature("last_digit") == 1
    assert priors.propose("ok 😂").feature("last_emoji") == 1
    assert priors.propose("ok!").feature("last_symbol") == 1
    typo = priors.propose("Pretty gud")
    assert 0 < typo.feature("correction_cost") < 1 and typo.feature("correction_confidence") > 0
    assert priors.propose("我们谈论这个得").feature("zh_p_typo") > priors.propose("我们谈论这个的").feature("zh_p_typo")
    assert priors.propose("你好").feature("zh_p_typo") < 0.5


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_never_crashes(priors: Priors, name: str) -> None:
    _check_well_formed(priors.propose(BAD_INPUTS[name]))
    _check_well_formed(priors.propose(BAD_INPUTS[name], k=1))


def test_random_text_never_crashes(priors: Priors) -> None:
    rng = random.Random(0)
    pool = (list("abcdefghijklmnopqrstuvwxyzABCXYZ'’ .,!?@#0123456789") + list("我们你好的了是在吗呢见感谢")
            + ["😂", "👍🏻", "❤️", "\u200d", "\ufe0f", "\u0301", "\x00", "\x1b", "\ud800", "\u202e", "ｈ", "١", "\n"])
    for _ in range(300):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 30)))
        _check_well_formed(priors.propose(text))


def test_a_non_string_is_a_clear_error(priors: Priors) -> None:
    with pytest.raises(TypeError, match="context must be a str"):
        priors.propose(None)  # type: ignore[arg-type]


# -- build, files, loading -----------------------------------------------------------------------
def test_build_is_deterministic_and_replaces_the_folder_atomically(built: Path, tmp_path: Path) -> None:
    """A second build, in another interpreter with another string-hash seed, writes the same
    bytes into the same folder, and leaves no temporary folder behind."""
    before = {p.name: p.read_bytes() for p in built.iterdir()}
    records = tmp_path / "records.json"
    records.write_text(json.dumps([vars(r) for r in TRAIN], ensure_ascii=False), encoding="utf-8")
    script = textwrap.dedent(f"""
        import json
        from types import SimpleNamespace
        from keypilot.priors import build_priors
        records = [SimpleNamespace(**r) for r in json.load(open({str(records)!r}, encoding="utf-8"))]
        build_priors(records, {str(built)!r}, progress=False, en_words=5000, zh_words=30000)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    after = {p.name: p.read_bytes() for p in built.iterdir()}
    assert before.keys() == after.keys() and all(before[name] == after[name] for name in before)
    assert sorted(p.name for p in built.parent.iterdir()) == [PRIORS_DIR]


def test_load_errors_are_clear(tmp_path: Path, built: Path) -> None:
    with pytest.raises(FileNotFoundError, match="keypilot priors build"):
        Priors.load(tmp_path / "nowhere")
    foreign = tmp_path / "old"
    foreign.mkdir()
    (foreign / "manifest.json").write_text(json.dumps({"format_version": 0}))
    with pytest.raises(ValueError, match="rebuild"):
        Priors.load(foreign)


def test_query_side_is_light(built: Path) -> None:
    """A fresh interpreter answers keystrokes without torch or any build-time library."""
    script = textwrap.dedent(f"""
        import json, sys
        from keypilot.priors import Priors
        priors = Priors.load({str(built)!r})
        out = priors.propose("我们明天jian")
        heavy = ("torch", "jieba", "pypinyin", "wordfreq", "symspellpy", "emoji")
        print(json.dumps({{"loaded": sorted(m for m in heavy if m in sys.modules), "buffer": out.pinyin_buffer}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"loaded": [], "buffer": "jian"}


def test_cli_builds_next_to_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from keypilot.cli import build_parser

    args = build_parser().parse_args(["priors", "build", "--data", str(tmp_path / "data")])
    assert args.func.__name__ == "_priors_build" and args.out is None
    with pytest.raises(Exception, match="data"):
        args.func(args)  # no such data: the record reader's error, nothing written
    assert not (tmp_path / "data" / "priors").exists()
