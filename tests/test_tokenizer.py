"""The byte-level BPE: exact round-trip, seeded coverage, digit budget, determinism."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import emoji
import pytest

from keypilot.labels import LAYOUTS, TASKS
from keypilot.tokenizer import (
    KeyPilotTokenizer,
    build_tokenizer,
    seed_chinese_chars,
    seed_english_words,
    train_tokenizer,
)

CORPUS = [
    "See you tomorrow at 3pm",
    "how are you doing today? 😂😂",
    "我们明天见，路上小心",
    "好的，谢谢你 👍",
    "Your verification code is 482913",
    "call me at 138-1234-5678",
    "it's fine, don't worry",
] * 30


@pytest.fixture(scope="module")
def tok() -> KeyPilotTokenizer:
    return build_tokenizer(CORPUS, vocab_size=32000)


TRICKY = [
    "👨‍👩‍👧‍👦 family, 👩🏽‍💻 coder, 🏳️‍🌈",
    "🇺🇸🇨🇳🇯🇵 flags and 🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "繁體中文：我們明天見",
    "ＡＢＣ１２３，全角！",
    "cafe\u0301 nai\u0308ve e\u0301\u0302\u0323",
    "混合 text 😀 with 中文 and 123 digits 1️⃣ #️⃣",
    "line one\nline two\r\n\ttabbed  double  spaces ",
    "<eos> <pad> <task:suggestion> look like specials but are text",
    "我们明天jian",
    "",
    "\u200d\ufe0f lone joiners",
]


@pytest.mark.parametrize("text", TRICKY)
def test_exact_round_trip(tok: KeyPilotTokenizer, text: str) -> None:
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert not set(ids) & tok.special_ids


@pytest.mark.parametrize("text", ["tomorrow", "小心", "482913", "Sounds good!", "👍", "13812345678", "🇨🇳"])
def test_target_round_trip(tok: KeyPilotTokenizer, text: str) -> None:
    assert tok.decode_target(tok.encode_target(text)) == text


def test_seeded_coverage(tok: KeyPilotTokenizer) -> None:
    # Trained on a tiny corpus, the seeds alone must make these single tokens.
    words = seed_english_words()
    assert len(words) == 5000 and words[0] == "the"
    assert all(tok.is_single_token(" " + w) for w in words)
    chars = seed_chinese_chars()
    assert len(chars) == 3500
    assert all(tok.is_single_token(c) for c in chars)
    fully_qualified = [e for e, v in emoji.EMOJI_DATA.items() if v["status"] == emoji.STATUS["fully_qualified"]]
    assert len(fully_qualified) > 3000
    assert all(tok.is_single_token(e) for e in fully_qualified)
    assert all(tok.is_single_token(d) and tok.is_single_token(" " + d) for d in "0123456789")
    assert len(tok.encode_target("tomorrow")) == 1
    # In running text too: the seeds survive the data merges.
    pieces = [tok.token(i) for i in tok.encode("I love the 👨‍👩‍👧‍👦 的一个")]
    assert {" the", "👨‍👩‍👧‍👦", "的"} <= set(pieces), pieces


def test_numbers_fit_the_suggestion_budget(tok: KeyPilotTokenizer) -> None:
    # Digits go in groups of three, each group one token (with its leading space for the first).
    assert [tok.token(i) for i in tok.encode_target("482913")] == [" 482", "913"]
    assert len(tok.encode_target("000000")) == 2
    assert len(tok.encode_target("13812345678")) == 4  # room for <eos> in T = 5
    assert len(tok.encode_target("157.49")) == 3
    assert all(len(tok.encode_target(f"{i:06d}")) == 2 for i in range(0, 1_000_000, 7919))


def test_special_ids(tok: KeyPilotTokenizer) -> None:
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id, tok.eos_id) == (0, 1, 2, 3, 4, 5)
    assert len(tok.task_ids) == len(TASKS) and len(tok.layout_ids) == len(LAYOUTS)
    assert tok.task_token_id("suggestion") == tok.task_ids[2]
    assert tok.layout_token_id("NUM") == tok.layout_ids[LAYOUTS.index("NUM")]
    assert tok.decode([tok.encode("ok")[0], tok.eos_id, tok.pad_id, -100]) == "ok"
    assert tok.vocab_size <= 32000


def test_save_load_pickle_and_determinism(tok: KeyPilotTokenizer, tmp_path: Path) -> None:
    tok.save(tmp_path / "a.json")
    build_tokenizer(CORPUS, vocab_size=32000).save(tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    loaded = KeyPilotTokenizer.from_file(tmp_path / "a.json")
    unpickled = pickle.loads(pickle.dumps(tok))
    for other in (loaded, unpickled):
        for text in TRICKY:
            assert other.encode(text) == tok.encode(text)
        assert other.eos_id == tok.eos_id and other.vocab_size == tok.vocab_size


def test_train_tokenizer_from_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    records = [
        {"id": str(i), "image": "none.png", "context": text, "task": "auto_completion", "target": "tomorrow", "layout": "EN"}
        for i, text in enumerate(CORPUS[:7])
    ]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records))
    tok = train_tokenizer(tmp_path, tmp_path / "out" / "tokenizer.json", vocab_size=25000)
    assert (tmp_path / "out" / "tokenizer.json").exists()
    assert tok.vocab_size <= 25000
    printed = capsys.readouterr().out
    assert "from 14 texts" in printed and "en_words: 5000/5000" in printed


def test_vocab_size_caps_data_merges_not_seeds() -> None:
    seeds_only = build_tokenizer([], vocab_size=32000).vocab_size
    capped = build_tokenizer(CORPUS, vocab_size=seeds_only + 20)
    assert capped.vocab_size == seeds_only + 20
    assert all(capped.is_single_token(" " + w) for w in seed_english_words()[:500])


def test_vocab_too_small_for_seeds() -> None:
    with pytest.raises(ValueError, match="too small"):
        build_tokenizer(CORPUS, vocab_size=1000)
