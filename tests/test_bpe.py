"""The compact tokenizer (keypilot.bpe) gives KeyPilotTokenizer's ids and texts, without `tokenizers`."""

from __future__ import annotations

import itertools
import json
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_tokenizer import CORPUS, TRICKY

from keypilot.bpe import CompactTokenizer, load_tokenizer, save_compact
from keypilot.labels import LAYOUTS, TASKS
from keypilot.run_folder import TOKENIZER_BPE_DIR as COMPACT_DIR
from keypilot.tokenizer import KeyPilotTokenizer, build_tokenizer

# Code-point pools the random strings draw from: each stresses one part of the split pattern.
POOLS = {
    "ascii": [chr(c) for c in range(0x20, 0x7F)] + ["'s", "'LL", "'ve", "'Re", "'ſ"],
    "chinese": [chr(c) for c in range(0x4E00, 0x4E00 + 400)] + list("，。！？、：；“”（）《》【】…—·～￥"),
    "emoji": ["👨‍👩‍👧", "👩🏽‍💻", "🏳️‍🌈", "🇺🇸", "🇨🇳", "🇺", "1️⃣", "#️⃣", "*⃣", "😂", "👍🏿", "❤️", "\u200d", "\ufe0f",
              "🏴󠁧󠁢󠁳󠁣󠁴󠁿"],
    "digits": list("0123456789") + ["١", "٣", "Ⅻ", "〇", "½", "²", "１", "⑤"],
    "fullwidth": [chr(c) for c in range(0xFF01, 0xFF5F)] + ["\u3000"],
    "marks": list("aeioucnsz") + ["\u0301", "\u0308", "\u0302", "\u0323", "\u0327", "é", "ñ", "ß", "İ", "ǅ", "Ω", "я", "ע", "ع"],
    "space": [" ", " ", "\t", "\n", "\r", "\x0b", "\x0c", "\x85", "\xa0", "\u2028", "\u3000", "\u200b", "\u180e", "\x1c"],
    "control": [chr(c) for c in range(0x20)] + ["\x7f", "\u200e", "\ufeff", "\U000e0041"],
}


def _random_text(rng: random.Random, length: int) -> str:
    """A string mixing the pools, with a share of code points drawn from anywhere in Unicode."""
    pools = list(POOLS.values())
    out = []
    for _ in range(length):
        if rng.random() < 0.15:
            cp = rng.randrange(0x110000)
            out.append(chr(cp) if not 0xD800 <= cp < 0xE000 else "?")
        else:
            out.append(rng.choice(rng.choice(pools)))
    return "".join(out)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyPilotTokenizer, CompactTokenizer]:
    folder = tmp_path_factory.mktemp("bpe")
    build_tokenizer(CORPUS, vocab_size=32000).save(folder / "tokenizer.json")
    return KeyPilotTokenizer.from_file(folder / "tokenizer.json"), CompactTokenizer(save_compact(folder / "tokenizer.json", folder))


def _texts() -> list[str]:
    rng = random.Random(12)
    texts = [*TRICKY, *CORPUS[:7], "see you tmrw", "我们明天", "hello wor", "  ", " \n \n", "a\u0301" * 50,
             "1234567890" * 3, "x" * 10_000, "我们" * 5_000, "🇺🇸" * 501, " 👍🏿" * 2_000]
    texts += [_random_text(rng, rng.randrange(1, 80)) for _ in range(1500)]
    texts += [_random_text(rng, 10_000) for _ in range(2)]
    texts += ["".join(rng.choice(pool) for _ in range(rng.randrange(1, 40))) for pool in POOLS.values() for _ in range(40)]
    return texts


def _same_pieces(rust: KeyPilotTokenizer, compact: CompactTokenizer, text: str) -> bool:
    ends = list(itertools.accumulate(len(piece) for piece in compact.pieces(text)))
    return list(zip([0, *ends[:-1]], ends)) == [span for _, span in rust._tok.pre_tokenizer.pre_tokenize_str(text)]


def test_encode_matches_tokenizers(pair: tuple[KeyPilotTokenizer, CompactTokenizer]) -> None:
    rust, compact = pair
    for text in _texts():
        assert _same_pieces(rust, compact, text), text
        assert compact.encode(text) == rust.encode(text), text
        assert compact.encode_target(text) == rust.encode_target(text), text


def test_split_at_every_class_edge(pair: tuple[KeyPilotTokenizer, CompactTokenizer]) -> None:
    """The pre-tokens themselves (ids hide a wrong split wherever no merge crosses it): every code
    point next to a class's edge, and a sample of the others, in each context the pattern tells apart."""
    rust, compact = pair
    meta = json.loads((compact.folder / "meta.json").read_text(encoding="utf-8"))
    edges = {cp + d for ranges in meta["classes"].values() for lo, hi in ranges for cp in (lo, hi) for d in (-1, 0, 1)}
    edges |= set(random.Random(3).sample(range(0x110000), 3000))
    chars = [chr(cp) for cp in sorted(edges) if 0 <= cp < 0x110000 and not 0xD800 <= cp < 0xE000]
    for start in range(0, len(chars), 300):
        text = "".join(f"a{c} {c}'{c}{c}'{c}e'v{c}'r{c}\n{c}{c}中{c}1{c}!{c}é{c}🇺🇸{c}" for c in chars[start : start + 300])
        assert _same_pieces(rust, compact, text)
        assert compact.encode(text) == rust.encode(text)


def test_decode_matches_tokenizers(pair: tuple[KeyPilotTokenizer, CompactTokenizer]) -> None:
    rust, compact = pair
    rng = random.Random(5)
    assert compact.vocab_size == rust.vocab_size
    assert [compact.token(i) for i in range(rust.vocab_size + 3)] == [rust.token(i) for i in range(rust.vocab_size + 3)]
    for text in _texts()[:300]:
        ids = rust.encode_target(text)
        assert compact.decode_target(ids) == rust.decode_target(ids)
        assert compact.decode(rust.encode(text)) == text
    # Token sequences the decoder may produce: cut UTF-8 (single bytes), specials, out-of-range ids.
    for _ in range(2000):
        ids = [rng.randrange(rust.vocab_size + 5) if rng.random() < 0.3 else rng.randrange(280) for _ in range(rng.randrange(8))]
        assert compact.decode(ids) == rust.decode(ids), ids
        assert compact.decode_target(ids) == rust.decode_target(ids), ids


def test_special_and_label_ids(pair: tuple[KeyPilotTokenizer, CompactTokenizer]) -> None:
    rust, compact = pair
    for name in ("pad_id", "unk_id", "cls_id", "sep_id", "mask_id", "eos_id", "task_ids", "layout_ids", "special_ids"):
        assert getattr(compact, name) == getattr(rust, name), name
    assert [compact.task_token_id(t) for t in TASKS] == [rust.task_token_id(t) for t in TASKS]
    assert [compact.layout_token_id(x) for x in LAYOUTS] == [rust.layout_token_id(x) for x in LAYOUTS]
    assert compact.is_single_token(" tomorrow") and not compact.is_single_token("tomorrow tomorrow")


def test_save_compact_refuses_another_pipeline(tmp_path: Path, pair: tuple[KeyPilotTokenizer, CompactTokenizer]) -> None:
    spec = json.loads(pair[0]._tok.to_str())
    spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\s+|\S+"
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(ValueError, match="pre-tokenizer"):
        save_compact(tmp_path / "tokenizer.json", tmp_path)
    assert not (tmp_path / COMPACT_DIR).exists()


def test_load_tokenizer_falls_back_and_names_a_missing_folder(tmp_path: Path, pair: tuple[KeyPilotTokenizer, CompactTokenizer]) -> None:
    shutil.copy(pair[1].folder.parent / "tokenizer.json", tmp_path / "tokenizer.json")
    assert isinstance(load_tokenizer(tmp_path, {"tokenizer": "tokenizer.json"}), KeyPilotTokenizer)
    with pytest.raises(FileNotFoundError, match=COMPACT_DIR):
        load_tokenizer(tmp_path, {"tokenizer": "tokenizer.json", "tokenizer_bpe": COMPACT_DIR})
    (tmp_path / COMPACT_DIR).mkdir()
    with pytest.raises(ValueError, match="not a compact tokenizer"):
        load_tokenizer(tmp_path, {"tokenizer": "tokenizer.json", "tokenizer_bpe": COMPACT_DIR})
    shutil.rmtree(tmp_path / COMPACT_DIR)
    shutil.copytree(pair[1].folder, tmp_path / COMPACT_DIR)
    meta = json.loads((tmp_path / COMPACT_DIR / "meta.json").read_text(encoding="utf-8"))
    del meta["special_ids"]["<eos>"]
    (tmp_path / COMPACT_DIR / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ValueError, match="not a compact tokenizer.*<eos>"):
        load_tokenizer(tmp_path, {"tokenizer": "tokenizer.json", "tokenizer_bpe": COMPACT_DIR})


def test_predictor_on_an_export_does_not_import_tokenizers(tiny_export: tuple[Path, Path, Path]) -> None:
    _, _, export = tiny_export
    assert (export / COMPACT_DIR / "meta.json").is_file()
    script = textwrap.dedent(f"""
        import sys
        from keypilot.inference.onnx_predictor import OnnxPredictor
        predictor = OnnxPredictor.from_pretrained({str(export)!r}, int8=True)
        print(type(predictor.tokenizer).__name__, "tokenizers" in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["CompactTokenizer", "False"]


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from test_export import make_tiny_export

    return make_tiny_export(tmp_path_factory.getbasetemp() / "onnx-tiny")
