"""Offline text sources, loaded once per process.

Every source is an installed package (see docs/data.md for licences): real English chat
from ``chitchat_dataset``, real misspellings from codespell's ``dictionary.txt``, word
frequencies from ``wordfreq``, Chinese vocabulary from jieba's dictionary intersected with
wordfreq, small real Chinese conversations from ``chatterbot_corpus``, pinyin from
``pypinyin`` and emoji names (English and Chinese) from ``emoji``. Chinese chat is also
composed from templates (``phrases``) because no package ships running Chinese chat.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import emoji
import jieba
import yaml
from fontTools.ttLib import TTFont
from pypinyin.constants import PHRASES_DICT, PINYIN_DICT
from wordfreq import top_n_list

from keypilot.data.generate.fonts import font_paths, script_of
from keypilot.data.generate.phrases import ZH_FILLERS

_WORD = re.compile(r"^[a-z]+$")
_EN_STOP = {"face", "with", "of", "the", "and", "button", "symbol", "sign", "mark", "a", "in", "on", "person", "man", "woman"}
# Hand-picked reactions that real threads are full of; meaning-matched emoji are added per message.
REACTIONS: tuple[str, ...] = tuple(
    "😂 ❤️ 👍 🔥 😭 🙏 😍 🥰 😊 🎉 👏 💯 🤣 😅 🙌 😘 🥺 ✨ 😎 🤔 👀 💪 😁 🤗 😢 🙈 👌 ❤️‍🔥 😴 🥳".split()
)
_EN_MOOD = {
    "haha": "😂", "lol": "🤣", "lmao": "😂", "funny": "😂", "love": "❤️", "thanks": "🙏", "thank": "🙏",
    "sorry": "😔", "sad": "😢", "great": "👍", "ok": "👌", "okay": "👌", "cool": "😎", "wow": "😮",
    "congrats": "🎉", "birthday": "🎂", "party": "🥳", "tired": "😴", "hungry": "🤤", "yes": "👍",
    "cute": "🥰", "miss": "🥺", "hot": "🥵", "cold": "🥶", "hug": "🤗", "think": "🤔", "good": "😊",
}
_ZH_MOOD = {
    "哈哈": "😂", "笑死": "🤣", "谢谢": "🙏", "好的": "👌", "生日": "🎂", "爱": "❤️", "累": "😴",
    "饿": "🤤", "加油": "💪", "晚安": "🌙", "早": "☀️", "对不起": "😔", "难过": "😢", "厉害": "👍",
    "开心": "😊", "可爱": "🥰", "想你": "🥺", "吃": "😋", "冷": "🥶", "热": "🥵",
}


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"text source package {name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass
class Corpus:
    en_convs: list[list[tuple[int, str]]]  # conversations: (speaker 0/1, message)
    en_pairs: list[tuple[str, str]]  # (question, short real reply)
    en_words: list[str]  # by frequency, most common first
    en_common: set[str]  # the 20,000 most common, for "is this typo a real word?"
    misspellings: dict[str, list[str]]  # correct word -> real misspellings of it
    zh_pairs: list[tuple[str, str]]  # (message, reply) from chatterbot
    zh_lines: list[str]  # chatterbot lines usable as chat
    zh_words: list[str]  # common Chinese words by frequency (2+ characters)
    zh_fillers: dict[str, list[str]]  # template slot -> words
    pinyin: dict[str, str] = field(default_factory=dict)  # word -> toneless pinyin
    homophones: dict[str, list[str]] = field(default_factory=dict)  # pinyin -> words
    emoji_all: list[str] = field(default_factory=list)  # fully-qualified emoji
    emoji_by_word: dict[str, list[str]] = field(default_factory=dict)  # EN name word -> emoji
    emoji_zh: list[tuple[str, str]] = field(default_factory=list)  # (Chinese name, emoji)

    def to_pinyin(self, word: str) -> str:
        cached = self.pinyin.get(word)
        return cached if cached is not None else fast_pinyin(word)

    def emoji_for(self, text: str, zh: bool) -> list[str]:
        """Emoji whose meaning matches ``text`` (by the emoji's name or a mood word)."""
        found: list[str] = []
        if zh:
            found += [e for w, e in _ZH_MOOD.items() if w in text]
            found += [e for name, e in self.emoji_zh if name in text]
        else:
            for word in re.findall(r"[a-z]+", text.lower()):
                if word in _EN_MOOD:
                    found.append(_EN_MOOD[word])
                found += self.emoji_by_word.get(word, [])[:3]
        return list(dict.fromkeys(found))


def _toneless(syllable: str) -> str:
    # ü is typed as v on a pinyin keyboard; strip tone marks only after that.
    nfd = unicodedata.normalize("NFD", syllable).replace("u\u0308", "v")
    return "".join(c for c in nfd if not unicodedata.combining(c))


def fast_pinyin(word: str) -> str:
    """Toneless pinyin from pypinyin's phrase and character tables (phrase readings win, so
    银行 is yinhang); ~50x faster than ``lazy_pinyin`` for dictionary-sized word lists."""
    if word in PHRASES_DICT:
        return "".join(_toneless(p[0]) for p in PHRASES_DICT[word])
    return "".join(_toneless(PINYIN_DICT[ord(c)].split(",")[0]) if ord(c) in PINYIN_DICT else c for c in word)


def _load_chitchat() -> tuple[list[list[tuple[int, str]]], list[tuple[str, str]]]:
    data = json.loads((_package_dir("chitchat_dataset") / "dataset.json").read_text(encoding="utf-8"))
    convs: list[list[tuple[int, str]]] = []
    pairs: list[tuple[str, str]] = []
    for conv in data.values():
        speakers: dict[str, int] = {}
        msgs: list[tuple[int, str]] = []
        for turn in conv["messages"][:16]:
            for utt in turn:
                text = " ".join(utt["text"].split())
                if 0 < len(text) <= 160:
                    msgs.append((speakers.setdefault(utt["sender"], len(speakers) % 2), text))
        for (s0, a), (s1, b) in zip(msgs, msgs[1:]):
            if s0 != s1 and a.endswith("?") and 1 <= len(b.split()) <= 5 and not b.endswith("?"):
                pairs.append((a, b))
        if len(msgs) >= 4:
            convs.append(msgs)
    return convs, pairs


def _load_misspellings(vocab: set[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    path = _package_dir("codespell_lib") / "data" / "dictionary.txt"
    for line in path.read_text(encoding="utf-8").splitlines():
        wrong, _, fixes = line.partition("->")
        fixes_list = [f.strip() for f in fixes.split(",") if f.strip()]
        # Only unambiguous fixes of common words: the target must be the one right answer.
        if len(fixes_list) == 1 and fixes_list[0] in vocab and _WORD.match(wrong):
            out[fixes_list[0]].append(wrong)
    return dict(out)


def _load_chatterbot_zh() -> tuple[list[tuple[str, str]], list[str]]:
    pairs: list[tuple[str, str]] = []
    lines: list[str] = []
    for path in sorted((_package_dir("chatterbot_corpus") / "data" / "chinese").glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for conv in doc.get("conversations", []):
            conv = [str(x).strip() for x in conv if isinstance(x, (str, int)) and 1 < len(str(x).strip()) <= 40]
            lines += conv
            pairs += [(a, b) for a, b in zip(conv, conv[1:]) if len(b) <= 12]
    return pairs, lines


def _drawable(char: str, cmap: dict[int, str]) -> bool:
    """Whether the emoji font draws ``char`` as emoji (keycaps and © would fall to the text fonts)."""
    return all(script_of(ch) == "emoji" for ch in char) and all(
        ord(ch) in cmap for ch in char if ch not in "\u200d\ufe0f" and not 0xE0020 <= ord(ch) <= 0xE007F
    )


def _load_emoji(corpus: Corpus) -> None:
    emoji.config.load_language("zh")
    fq = emoji.STATUS["fully_qualified"]
    cmap = TTFont(str(font_paths()["emoji"]), lazy=True).getBestCmap()
    for char, info in emoji.EMOJI_DATA.items():
        if info["status"] != fq or not _drawable(char, cmap):
            continue
        corpus.emoji_all.append(char)
        name = info["en"].strip(":").lower()
        if "skin_tone" in name:
            continue
        for word in name.split("_"):
            if len(word) > 2 and word not in _EN_STOP:
                corpus.emoji_by_word.setdefault(word, []).append(char)
        zh_name = info.get("zh", "").strip(":")
        if 2 <= len(zh_name) <= 4 and "：" not in zh_name:
            corpus.emoji_zh.append((zh_name, char))


@lru_cache(maxsize=1)
def load_corpus() -> Corpus:
    """Load every text source (a few seconds); later calls in the process are free."""
    jieba.setLogLevel(logging.WARNING)
    en_words = [w for w in top_n_list("en", 40000) if _WORD.match(w)][:30000]
    convs, pairs = _load_chitchat()
    zh_pairs, zh_lines = _load_chatterbot_zh()
    zh_top = [w for w in top_n_list("zh", 30000) if all("\u4e00" <= c <= "\u9fff" for c in w)]
    fillers = {slot: list(words) for slot, words in ZH_FILLERS.items()}
    # Places from jieba's dictionary (tag ns) that are also common per wordfreq.
    common = set(zh_top[:20000])
    jieba_dict = _package_dir("jieba") / "dict.txt"
    places = re.findall(r"^(\S{2,3}) \d+ ns$", jieba_dict.read_text(encoding="utf-8"), re.M)
    # Keep names that read as destinations ("到黄山了"), not every ns-tagged word.
    fillers["place"] += [w for w in places if w in common and w[-1] in "市省县山湖江河路街站园岛" and w != "黑市"]
    corpus = Corpus(
        en_convs=convs,
        en_pairs=pairs,
        en_words=en_words,
        en_common=set(en_words[:20000]),
        misspellings=_load_misspellings(set(en_words[:20000])),
        zh_pairs=zh_pairs,
        zh_lines=zh_lines,
        zh_words=[w for w in zh_top if len(w) >= 2][:12000],
        zh_fillers=fillers,
    )
    homophones: dict[str, list[str]] = defaultdict(list)
    for word in zh_top[:25000]:
        py = fast_pinyin(word)
        corpus.pinyin[word] = py
        homophones[py].append(word)
    corpus.homophones = dict(homophones)
    _load_emoji(corpus)
    jieba.initialize()
    return corpus


def segment_zh(text: str) -> list[str]:
    """jieba segmentation (dictionary loaded by :func:`load_corpus`)."""
    return [w for w in jieba.lcut(text) if w]


__all__ = ["REACTIONS", "Corpus", "fast_pinyin", "load_corpus", "segment_zh"]
