"""The shared multilingual vocabulary: a byte-level BPE over English, Chinese, digits and emoji.

Byte-level BPE round-trips any Unicode text exactly (ZWJ emoji, flags, traditional and
full-width Chinese, combining marks), but trained on chat text alone it leaves many common
words, Chinese characters and emoji split into several tokens, and the decoder predicts one
token per correction/completion candidate. So the vocabulary is built in two passes:

1. *Seeds* (top English words with their leading space, top Chinese characters, every emoji
   of ``emoji.EMOJI_DATA``, digit groups) are trained alone until each is one token.
2. The data set's contexts and targets are trained alone; its merges are appended after the
   seed merges until the vocabulary is full.

Seed merges come first in rank, so a seed is always merged completely before any data merge
can touch it: plain text containing a seed encodes it as one token. Nothing is an "added
token", so the BPE still merges seeds into longer words learned from the data.

Pre-tokenization (a GPT-2-like regex, changed for this job): Chinese runs are split from Latin
runs (``我们明天jian``); digits are grouped in threes (all of ``000``..``999``, with and
without a leading space, are seeds) so a 6-digit code is 2 tokens and an 11-digit phone number
4, within the 5-token suggestion budget;
emoji sequences (ZWJ, flags, skin tones, keycaps) stay in one piece.
"""

from __future__ import annotations

import functools
import json
import os
import time
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from keypilot.labels import LAYOUTS, TASKS

# `tokenizers` is imported where it is used: this module's names (special tokens, the split
# pattern) are also read by the ONNX predictor's compact tokenizer (keypilot.bpe), which does
# without it.
if TYPE_CHECKING:
    from tokenizers import Tokenizer, models

PAD, UNK, CLS, SEP, MASK, EOS = "<pad>", "<unk>", "<cls>", "<sep>", "<mask>", "<eos>"
TASK_TOKENS: tuple[str, ...] = tuple(f"<task:{t}>" for t in TASKS)
LAYOUT_TOKENS: tuple[str, ...] = tuple(f"<layout:{name}>" for name in LAYOUTS)
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, CLS, SEP, MASK, EOS) + TASK_TOKENS + LAYOUT_TOKENS

NUM_EN_WORDS = 5000
NUM_ZH_CHARS = 3500
NUM_EN_CAPITALIZED = 1000

# Alternatives, tried in order at each position: digit keycap emoji (1️⃣), English
# contractions, Han runs, other-script letter runs with their marks (decomposed accents) and an
# optional leading space, up to 3 digits with an optional leading space (not the digit of a
# keycap), a flag (two regional indicators: in a run like 🇺🇸🇨🇳 BPE could otherwise pair the
# middle two), other symbol/punctuation/emoji runs with an optional leading space, whitespace.
PRETOKENIZE_PATTERN = (
    r"[0-9#*]\x{FE0F}?\x{20E3}"
    r"|'(?i:[sdmt]|ll|ve|re)"
    r"|\p{Han}+"
    r"| ?[\p{L}\p{M}&&[^\p{Han}]]+"
    r"| ?\p{N}{1,3}(?!\x{FE0F}?\x{20E3})"
    r"| ?[\x{1F1E6}-\x{1F1FF}]{2}"
    r"| ?[^\s\p{L}\p{N}\x{1F1E6}-\x{1F1FF}]+"
    r"|\s+(?!\S)|\s+"
)


def _new_tokenizer(model: models.Model) -> Tokenizer:
    from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers

    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def _starts_word(text: str) -> bool:
    """True when ``text`` begins with a Latin letter or an ASCII digit (targets get a space)."""
    if not text:
        return False
    ch = text[0]
    return ch in "0123456789" or (ch.isalpha() and unicodedata.name(ch, "").startswith("LATIN"))


# ----------------------------------------------------------------------------- seeds


def seed_english_words(n: int = NUM_EN_WORDS) -> list[str]:
    """The ``n`` most frequent alphabetic English words (wordfreq), lower case, no space."""
    from wordfreq import top_n_list

    return [w for w in top_n_list("en", 4 * n) if w.isascii() and w.isalpha()][:n]


def seed_chinese_chars(n: int = NUM_ZH_CHARS) -> list[str]:
    """The ``n`` most frequent single Chinese characters in wordfreq's ``zh`` list."""
    from wordfreq import top_n_list

    chars = (w for w in top_n_list("zh", 400_000) if len(w) == 1)
    return [c for c in chars if unicodedata.name(c, "").startswith("CJK")][:n]


def seed_emoji() -> list[str]:
    """Every emoji of ``emoji.EMOJI_DATA`` (all qualification levels, components included)."""
    import emoji

    return sorted(emoji.EMOJI_DATA)


def seed_digits() -> list[str]:
    """Digit groups as the pre-tokenizer cuts them: 1-3 digits (zero-padded too), alone and
    after a space. A number target gets a leading space (``encode_target``), so a 6-digit code
    is 2 tokens (``" 482"``, ``"913"``) and an 11-digit phone number 4, leaving room for <eos>."""
    groups = [f"{i:0{width}d}" for width in (1, 2, 3) for i in range(10**width)]
    return groups + [" " + g for g in groups]


# Non-ASCII symbols a SYM target or an amount often needs (ASCII ones are single bytes).
SEED_SYMBOLS: tuple[str, ...] = tuple("，。！？、：；“”‘’（）《》【】…—·～￥¥€£°×÷±≈≠≤≥→←↑↓•©®™") + tuple(
    chr(cp) for cp in range(0xFF01, 0xFF5F)  # full-width ASCII (Ｏ，ＡＢＣ１２３), typed on Chinese keyboards
)


def seed_strings() -> list[str]:
    """All seeds, each of which must end up as one token."""
    english = seed_english_words()
    return (
        [" " + w for w in english]
        # Sentence starts and suggestions ("Sounds good!") capitalise the commonest words.
        + [" " + w.capitalize() for w in english[:NUM_EN_CAPITALIZED]]
        + list(SEED_SYMBOLS)
        + seed_chinese_chars()
        + seed_emoji()
        + seed_digits()
    )


# ----------------------------------------------------------------------------- the tokenizer


class TokenizerBase:
    """What KeyPilot's two tokenizers derive from ``encode`` / ``encode_batch`` / ``decode`` and
    the special tokens' ids: this one, and the ONNX predictor's compact one (``keypilot.bpe``)."""

    def _set_special_ids(self, ids: dict[str, int]) -> None:
        """``ids``: every ``SPECIAL_TOKENS`` token's id."""
        self.pad_id, self.unk_id, self.cls_id = ids[PAD], ids[UNK], ids[CLS]
        self.sep_id, self.mask_id, self.eos_id = ids[SEP], ids[MASK], ids[EOS]
        self.task_ids: tuple[int, ...] = tuple(ids[t] for t in TASK_TOKENS)  # TASKS order
        self.layout_ids: tuple[int, ...] = tuple(ids[t] for t in LAYOUT_TOKENS)  # LAYOUTS order
        self.special_ids: frozenset[int] = frozenset(ids.values())

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    def task_token_id(self, task: str) -> int:
        return self.task_ids[TASKS.index(task)]

    def layout_token_id(self, layout: str) -> int:
        return self.layout_ids[LAYOUTS.index(layout)]

    def encode_target(self, text: str) -> list[int]:
        """Ids of a target in the form targets are learned in: with a leading space when it
        starts with a Latin letter or digit, so ``"tomorrow"`` is the single token ``" tomorrow"``."""
        return self.encode(" " + text if _starts_word(text) else text)

    def encode_targets(self, texts: list[str]) -> list[list[int]]:
        """``encode_target`` of many texts at once."""
        return self.encode_batch([" " + t if _starts_word(t) else t for t in texts])

    def decode_target(self, ids: Iterable[int]) -> str:
        """Inverse of ``encode_target``: drops the leading space it adds.

        Exact for every target that does not itself start with a space followed by a Latin
        letter or digit (word targets never do).
        """
        text = self.decode(ids)
        return text[1:] if text.startswith(" ") and _starts_word(text[1:]) else text

    def is_single_token(self, text: str) -> bool:
        return len(self.encode(text)) == 1


class KeyPilotTokenizer(TokenizerBase):
    """A trained byte-level BPE plus KeyPilot's special, task and layout tokens.

    ``encode`` never produces special tokens (text that looks like ``<eos>`` is encoded as
    plain text), so ``decode(encode(text)) == text`` for any string.
    """

    def __init__(self, tokenizer: Tokenizer):
        self._tok = tokenizer
        self._tok.encode_special_tokens = True  # "<pad>" typed by a user is just text
        ids = {tok: tokenizer.token_to_id(tok) for tok in SPECIAL_TOKENS}
        missing = [tok for tok, i in ids.items() if i is None]
        if missing:
            raise ValueError(f"not a KeyPilot tokenizer: missing {', '.join(missing)}")
        self._set_special_ids(ids)

    # Pickled (DataLoader workers) as its JSON: the Rust object's own pickling drops the
    # encode_special_tokens switch.
    def __getstate__(self) -> dict[str, str]:
        return {"json": self._tok.to_str()}

    def __setstate__(self, state: dict[str, str]) -> None:
        from tokenizers import Tokenizer

        self.__init__(Tokenizer.from_str(state["json"]))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> KeyPilotTokenizer:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)))

    def save(self, path: str | os.PathLike) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._tok.save(str(path), pretty=True)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """``encode`` of many texts at once (parallel in Rust)."""
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; special tokens (padding, ``<eos>``...) are dropped."""
        return self._tok.decode([int(i) for i in ids if int(i) >= 0], skip_special_tokens=True)

    def token(self, token_id: int) -> str | None:
        """The text of one token id (``None`` for a special token or an unknown id)."""
        if token_id in self.special_ids or self._tok.id_to_token(token_id) is None:
            return None
        return self.decode([token_id])


# ----------------------------------------------------------------------------- training


def _train_merges(texts: Iterator[str] | list[str], vocab_size: int, min_frequency: int) -> list[tuple[str, str]]:
    """BPE merges learned on ``texts`` alone, in rank order (byte-level token strings)."""
    from tokenizers import models, pre_tokenizers, trainers

    tok = _new_tokenizer(models.BPE())
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return [tuple(m) for m in json.loads(tok.to_str())["model"]["merges"]]


@functools.lru_cache(maxsize=1)
def _seed_merges() -> list[tuple[str, str]]:
    """Merges that make every seed one token (the same every call: cached per process)."""
    return _train_merges(["\n".join(seed_strings())], vocab_size=10**6, min_frequency=0)


def build_tokenizer(texts: list[str], vocab_size: int = 32000, min_frequency: int = 2) -> KeyPilotTokenizer:
    """A tokenizer whose seeds are single tokens, filled up to ``vocab_size`` from ``texts``.

    Deterministic: the same texts give the same vocabulary and merges.
    """
    from tokenizers import models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    seed_merges = _seed_merges()
    budget = vocab_size - len(SPECIAL_TOKENS) - len(alphabet) - len(seed_merges)
    if budget < 0:
        raise ValueError(f"vocab_size {vocab_size} is too small for the seeds ({vocab_size - budget} tokens)")
    data_merges = _train_merges(texts, vocab_size=vocab_size, min_frequency=min_frequency) if texts else []

    vocab: dict[str, int] = {}
    for token in list(SPECIAL_TOKENS) + alphabet:
        vocab[token] = len(vocab)
    merges: dict[tuple[str, str], None] = {}  # ordered set: a repeated pair would lose its seed rank
    for left, right in [*seed_merges, *data_merges]:
        if (left, right) in merges:
            continue
        if left + right not in vocab:
            if len(vocab) >= vocab_size:
                break  # data merges are in rank order: the tail is the least useful
            vocab[left + right] = len(vocab)
        # A data merge whose result a seed already made by another pair is kept: later data
        # merges may build on it.
        merges[(left, right)] = None

    tok = _new_tokenizer(models.BPE(vocab=vocab, merges=list(merges), unk_token=UNK))
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return KeyPilotTokenizer(tok)


def training_texts(data_path: str | os.PathLike) -> list[str]:
    """Contexts and targets (in ``encode_target`` form) of every record under ``data_path``."""
    from keypilot.data.format import read_records

    records = read_records(data_path, skip_bad=True, check_images=False)
    if records.skipped:
        print(f"tokenizer: skipped {records.skipped} bad record(s)")
    texts = [r.context for r in records if r.context]
    texts += [" " + r.target if _starts_word(r.target) else r.target for r in records]
    return texts


def coverage(tok: KeyPilotTokenizer) -> dict[str, tuple[int, int]]:
    """How many seeds of each kind are single tokens: name -> (single, total)."""
    import emoji

    groups = {
        "en_words": [" " + w for w in seed_english_words()],
        "zh_chars": seed_chinese_chars(),
        "emoji_fully_qualified": [e for e, v in emoji.EMOJI_DATA.items() if v["status"] == emoji.STATUS["fully_qualified"]],
        "emoji_all": seed_emoji(),
    }
    return {name: (sum(tok.is_single_token(s) for s in items), len(items)) for name, items in groups.items()}


def train_tokenizer(data_path: str | os.PathLike, out_path: str | os.PathLike, vocab_size: int = 32000) -> KeyPilotTokenizer:
    """Train on a data set (a ``.jsonl`` file or folder), save ``tokenizer.json`` to ``out_path``,
    print the time taken and the single-token coverage, and return the tokenizer."""
    start = time.perf_counter()
    texts = training_texts(data_path)
    if not texts:
        from keypilot.data.format import DataFormatError

        raise DataFormatError(f"{data_path}: no valid record to learn from (`keypilot data check {data_path}` says why)")
    tok = build_tokenizer(texts, vocab_size=vocab_size)
    elapsed = time.perf_counter() - start
    tok.save(out_path)
    print(f"tokenizer: {tok.vocab_size} tokens from {len(texts)} texts in {elapsed:.1f} s -> {out_path}")
    for name, (single, total) in coverage(tok).items():
        print(f"  single tokens, {name}: {single}/{total}")
    return tok
