"""The ONNX predictor's tokenizer: ``KeyPilotTokenizer``'s ids and texts from a few small files.

``tokenizers`` holds the vocabulary and merges as Rust hash maps (13 MB resident at the
reference size, 5 MB more while it parses ``tokenizer.json``) and costs 3 MB more to import.
A keystroke encodes one short context, so the predictor does the same work in Python over
arrays that ``keypilot export`` writes beside ``tokenizer.json`` and that are memory-mapped:

``tokenizer.bpe/`` (``save_compact``)
    ``meta.json``      vocabulary size, the special tokens' ids, the id of each byte's symbol and
                       the Unicode classes of the split pattern as code-point ranges;
    ``merges.npy``     int64 ``[3, M]``: pair keys ``left * V + right`` sorted, their rank, the
                       merged token's id (a pair's merge is found by binary search);
    ``tokens.npy``     uint8: the bytes of every token, end to end; ``offsets.npy`` int64
                       ``[V + 1]``: where token ``i``'s bytes start and end.

Exactly the Rust pipeline, step by step: the split pattern (``tokenizer.PRETOKENIZE_PATTERN``,
isolated: matches and the gaps between them are the pieces), each piece's UTF-8 bytes as
byte-level symbols, then merges lowest rank first, leftmost first among equal ranks, a pair
formed by a merge joining the queue at once (the order of ``tokenizers``' ``Word::merge_all``).
The Unicode classes of the pattern (``\\p{Han}``, ``\\p{L}``, ``\\p{N}``, ``\\s``, the
case-insensitive contraction letters) are not taken from Python's tables, whose Unicode version
differs from the Oniguruma library inside ``tokenizers``: ``save_compact`` asks that library
which code points each class holds, and the predictor's ``re`` pattern lists them. The
export checks the result against ``tokenizers`` on every token of the vocabulary and on a
sample of hard strings. Tested against ``KeyPilotTokenizer`` in ``tests/test_bpe.py``.

Reading needs numpy and the standard library only; writing needs ``tokenizers``.
"""

from __future__ import annotations

import functools
import heapq
import json
import os
import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from keypilot.run_folder import TOKENIZER_BPE_DIR
from keypilot.tokenizer import (
    PRETOKENIZE_PATTERN,
    SPECIAL_TOKENS,
    KeyPilotTokenizer,
    TokenizerBase,
)

FORMAT = 1
PIECE_CACHE = 4096  # pieces (words, runs) whose merged ids are kept: a keystroke repeats most of them

REGIONAL_INDICATORS = ((0x1F1E6, 0x1F1FF),)
# The pattern's classes, each asked of the Rust library as a pattern of its own.
CLASS_PROBES: dict[str, str] = {
    "han": r"\p{Han}",
    "word": r"[\p{L}\p{M}&&[^\p{Han}]]",
    "letter": r"\p{L}",
    "number": r"\p{N}",
    "space": r"\s",
    "sdmt": "(?i:[sdmt])",
    "l": "(?i:l)",
    "v": "(?i:v)",
    "e": "(?i:e)",
    "r": "(?i:r)",
}
Ranges = list[tuple[int, int]]


def byte_symbols() -> list[str]:
    """The byte-level alphabet: byte ``b`` is written as ``byte_symbols()[b]`` (printable Latin-1
    bytes as themselves, the others as the code points from U+0100 up, in byte order)."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    symbols, extra = {}, 0
    for b in range(256):
        if b in printable:
            symbols[b] = chr(b)
        else:
            symbols[b] = chr(0x100 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def _class(ranges: Iterable[tuple[int, int]], negate: bool = False) -> str:
    body = "".join(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in ranges)
    return f"[{'^' if negate else ''}{body}]"


def split_pattern(classes: dict[str, Ranges]) -> str:
    """``PRETOKENIZE_PATTERN`` for Python's ``re``, its Unicode classes spelled as ``classes``' ranges."""
    c = {name: _class(ranges) for name, ranges in classes.items()}
    symbol = _class(classes["space"] + classes["letter"] + classes["number"] + list(REGIONAL_INDICATORS), negate=True)
    keycap = "\\ufe0f?\\u20e3"
    return (
        f"[0-9#*]{keycap}"
        f"|'(?:{c['sdmt']}|{c['l']}{c['l']}|{c['v']}{c['e']}|{c['r']}{c['e']})"
        f"|{c['han']}+"
        f"| ?{c['word']}+"
        f"| ?{c['number']}{{1,3}}(?!{keycap})"
        f"| ?{_class(REGIONAL_INDICATORS)}{{2}}"
        f"| ?{symbol}+"
        f"|{c['space']}+(?!{_class(classes['space'], negate=True)})|{c['space']}+"
    )


class CompactTokenizer(TokenizerBase):
    """``KeyPilotTokenizer``'s encoding and decoding from ``tokenizer.bpe/`` (see the module's doc)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        try:
            meta = json.loads((self.folder / "meta.json").read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT:
                raise ValueError(f"meta.json has format {meta.get('format')!r}, this version reads {FORMAT}")
            merges = np.load(self.folder / "merges.npy", mmap_mode="r", allow_pickle=False)
            offsets = np.load(self.folder / "offsets.npy", mmap_mode="r", allow_pickle=False)
            if merges.ndim != 2 or len(merges) != 3 or offsets.ndim != 1 or len(meta["byte_ids"]) != 256:
                raise ValueError(f"merges {merges.shape}, offsets {offsets.shape}, {len(meta['byte_ids'])} byte ids")
            self._bytes = memoryview(np.load(self.folder / "tokens.npy", mmap_mode="r", allow_pickle=False))
            self.vocab_size: int = meta["vocab_size"]
            self._byte_ids: list[int] = meta["byte_ids"]
            classes = {name: [(lo, hi) for lo, hi in ranges] for name, ranges in meta["classes"].items()}
            self._split = re.compile(split_pattern(classes))
            ids = {token: meta["special_ids"][token] for token in SPECIAL_TOKENS}
        except (OSError, ValueError, KeyError, TypeError, re.error) as exc:
            raise ValueError(f"{self.folder}: not a compact tokenizer ({type(exc).__name__}: {exc}): export again") from None
        self._offsets = memoryview(offsets)
        self._rows = len(offsets) - 1  # ids with a token
        self._keys, self._ranks, self._merged = (memoryview(row) for row in merges)
        self._merge_piece = functools.lru_cache(maxsize=PIECE_CACHE)(self._merge)

        self._set_special_ids(ids)

    # ------------------------------------------------------------------ encoding

    def pieces(self, text: str) -> Iterator[str]:
        """The pre-tokens: every match of the split pattern and every gap between two."""
        end = 0
        for match in self._split.finditer(text):
            if match.start() > end:
                yield text[end : match.start()]
            yield match.group()
            end = match.end()
        if end < len(text):
            yield text[end:]

    def _pair(self, left: int, right: int) -> tuple[int, int] | None:
        """(rank, merged id) of the merge of ``left`` and ``right``, None when there is none."""
        key = left * self.vocab_size + right
        i = bisect_left(self._keys, key)
        if i < len(self._keys) and self._keys[i] == key:
            return self._ranks[i], self._merged[i]
        return None

    def _merge(self, piece: str) -> tuple[int, ...]:
        """A pre-token's ids: its byte symbols merged lowest rank first (leftmost among equals)."""
        ids = [self._byte_ids[b] for b in piece.encode("utf-8")]
        n = len(ids)
        nxt, prev, alive = list(range(1, n + 1)), list(range(-1, n - 1)), [True] * n
        nxt[-1] = -1
        queue = []
        for i in range(n - 1):
            if (found := self._pair(ids[i], ids[i + 1])) is not None:
                queue.append((found[0], i, found[1]))
        heapq.heapify(queue)
        while queue:
            _, pos, new_id = heapq.heappop(queue)
            right = nxt[pos]
            if not alive[pos] or right == -1:
                continue
            found = self._pair(ids[pos], ids[right])
            if found is None or found[1] != new_id:  # the pair has changed since it was queued
                continue
            ids[pos], alive[right] = new_id, False
            after = nxt[pos] = nxt[right]
            if after != -1:
                prev[after] = pos
            if prev[pos] != -1 and (found := self._pair(ids[prev[pos]], new_id)) is not None:
                heapq.heappush(queue, (found[0], prev[pos], found[1]))
            if after != -1 and (found := self._pair(new_id, ids[after])) is not None:
                heapq.heappush(queue, (found[0], pos, found[1]))
        return tuple(token for token, kept in zip(ids, alive) if kept)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added), as ``KeyPilotTokenizer.encode``."""
        ids: list[int] = []
        for piece in self.pieces(text):
            ids.extend(self._merge_piece(piece))
        return ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    # ------------------------------------------------------------------ decoding

    def _token_bytes(self, token_id: int) -> bytes:
        return self._bytes[self._offsets[token_id] : self._offsets[token_id + 1]].tobytes()

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; special tokens and ids outside the vocabulary are dropped, and bytes that
        are not UTF-8 become U+FFFD (as the Rust byte-level decoder does)."""
        ints = (int(i) for i in ids)
        data = b"".join(self._token_bytes(i) for i in ints if 0 <= i < self._rows and i not in self.special_ids)
        return data.decode("utf-8", errors="replace")

    def token(self, token_id: int) -> str | None:
        """The text of one token id (``None`` for a special token or an unknown id)."""
        if token_id in self.special_ids or not 0 <= token_id < self._rows:
            return None
        return self.decode([token_id])



def load_tokenizer(export_dir: str | os.PathLike, manifest: dict[str, Any]) -> CompactTokenizer | KeyPilotTokenizer:
    """An export's tokenizer: the compact one when the export has it (``manifest["tokenizer_bpe"]``),
    else ``tokenizer.json`` through ``tokenizers`` (exports made before it)."""
    export_dir = Path(export_dir)
    if manifest.get("tokenizer_bpe"):
        folder = export_dir / manifest["tokenizer_bpe"]
        if not folder.is_dir():
            raise FileNotFoundError(f"{export_dir}: the compact tokenizer {folder.name}/ named by the manifest is "
                                    "missing: copy it with the export or export again")
        return CompactTokenizer(folder)
    return KeyPilotTokenizer.from_file(export_dir / manifest["tokenizer"])


# ----------------------------------------------------------------------------- writing


def _ranges(members: Iterable[int]) -> Ranges:
    ranges: Ranges = []
    for cp in sorted(members):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return ranges


@functools.lru_cache(maxsize=1)
def probe_classes() -> dict[str, Ranges]:
    """The code points of each ``CLASS_PROBES`` class, as the regex library inside ``tokenizers``
    matches them (every code point but the surrogates; 2-3 s, once per process)."""
    from tokenizers import Regex, pre_tokenizers

    code_points = np.asarray([cp for cp in range(0x110000) if not 0xD800 <= cp < 0xE000])
    text = "".join(map(chr, code_points.tolist()))
    chunk = 16384  # the library's time per character grows with the length of the text
    classes = {}
    for name, pattern in CLASS_PROBES.items():
        split = pre_tokenizers.Split(Regex(pattern), behavior="removed")
        member = np.ones(len(code_points), bool)
        for start in range(0, len(text), chunk):
            # "removed" keeps the gaps: what is not kept matched. Offsets count characters.
            for _, (begin, end) in split.pre_tokenize_str(text[start : start + chunk]):
                member[start + begin : start + end] = False
        classes[name] = _ranges(code_points[member].tolist())
    return classes


def _check_supported(spec: dict[str, Any]) -> None:
    """Raise ValueError unless ``spec`` (a parsed tokenizer.json) is the pipeline this module reproduces."""
    expected_pre = [{"type": "Split", "pattern": {"Regex": PRETOKENIZE_PATTERN}, "behavior": "Isolated", "invert": False},
                    {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else []
    model = spec.get("model", {})
    problems = [
        spec.get("normalizer") is not None and "a normalizer",
        spec.get("post_processor") is not None and "a post-processor",
        (len(steps) != 2 or any({k: step.get(k) for k in want} != want for step, want in zip(steps, expected_pre)))
        and "another pre-tokenizer than keypilot.tokenizer's",
        (spec.get("decoder") or {}).get("type") != "ByteLevel" and "another decoder than ByteLevel",
        model.get("type") != "BPE" and "another model than BPE",
        any(model.get(k) for k in ("dropout", "continuing_subword_prefix", "end_of_word_suffix", "byte_fallback",
                                   "ignore_merges")) and "BPE options (dropout, prefix/suffix, byte fallback, ignore merges)",
        any(not t.get("special") for t in spec.get("added_tokens", [])) and "non-special added tokens",
    ]
    problems = [p for p in problems if p]
    if problems:
        raise ValueError(f"not a KeyPilot byte-level BPE: {', '.join(problems)}")


def _check_against(compact: CompactTokenizer, tokenizer: KeyPilotTokenizer, texts: list[str]) -> None:
    for text in texts:
        want = tokenizer.encode(text)
        if compact.encode(text) != want or compact.decode(want) != tokenizer.decode(want):
            raise ValueError(f"the compact tokenizer differs from tokenizers on {text!r}")


# Strings the export checks besides every token's text: each alternative of the split pattern.
CHECK_TEXTS = ("see you tmrw!! 我们明天jian 1️⃣ #️⃣ 👨‍👩‍👧 🇺🇸🇨🇳 Ｏ，ＡＢＣ１２３ café cafe\u0301 it's THEY'LL",
               "  \t\n x  ", "12345678901 ١٢٣⃣ ⅫⅫⅫ 〇〇 🇺", "'ſ 'ﬅ \x00\x1f\x7f\u200b\u3000end", "a" * 300)


def save_compact(tokenizer_json: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/tokenizer.bpe/`` for ``tokenizer_json`` and check it against ``tokenizers``
    (every token's text, ``CHECK_TEXTS``); returns the folder. ValueError when the tokenizer is not
    one this module reproduces, or when the check finds a difference (nothing is left behind)."""
    import shutil
    import tempfile

    spec = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    _check_supported(spec)
    tokenizer = KeyPilotTokenizer.from_file(tokenizer_json)
    vocab: dict[str, int] = spec["model"]["vocab"]
    num_ids = tokenizer.vocab_size
    if sorted(vocab.values()) != list(range(len(vocab))) or num_ids != len(vocab):
        raise ValueError(f"{tokenizer_json}: token ids are not 0..{len(vocab) - 1}")

    symbols = byte_symbols()
    byte_value = {s: b for b, s in enumerate(symbols)}
    missing = [s for s in symbols if s not in vocab]
    if missing:
        raise ValueError(f"{tokenizer_json}: the vocabulary lacks byte symbols {missing[:5]}")
    by_id = sorted(vocab, key=vocab.__getitem__)
    # The decoder's rule: a token of byte symbols is those bytes, any other its own UTF-8.
    blobs = [bytes(byte_value[c] for c in t) if all(c in byte_value for c in t) else t.encode("utf-8") for t in by_id]
    offsets = np.cumsum([0] + [len(b) for b in blobs], dtype=np.int64)

    pairs: dict[int, tuple[int, int]] = {}
    for rank, merge in enumerate(spec["model"]["merges"]):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        if left + right not in vocab:
            raise ValueError(f"{tokenizer_json}: merge {rank} ({left!r}, {right!r}) makes a token outside the vocabulary")
        pairs[vocab[left] * num_ids + vocab[right]] = (rank, vocab[left + right])  # a repeated pair: the last wins
    keys = np.fromiter(sorted(pairs), np.int64, len(pairs))
    merges = np.stack([keys, [pairs[k][0] for k in keys.tolist()], [pairs[k][1] for k in keys.tolist()]]).astype(np.int64)

    meta = {
        "format": FORMAT,
        "source": "tokenizers " + __import__("tokenizers").__version__,
        "vocab_size": num_ids,
        "special_ids": {t["content"]: t["id"] for t in spec["added_tokens"] if t["content"] in SPECIAL_TOKENS},
        "byte_ids": [vocab[s] for s in symbols],
        "classes": probe_classes(),
    }
    out = Path(out_dir) / TOKENIZER_BPE_DIR
    tmp = Path(tempfile.mkdtemp(prefix=".tokenizer.bpe.", dir=out_dir))
    try:
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        np.save(tmp / "merges.npy", merges, allow_pickle=False)
        np.save(tmp / "tokens.npy", np.frombuffer(b"".join(blobs), np.uint8), allow_pickle=False)
        np.save(tmp / "offsets.npy", offsets, allow_pickle=False)
        texts = [tokenizer.decode([i]) for i in range(num_ids) if i not in tokenizer.special_ids]
        _check_against(CompactTokenizer(tmp), tokenizer, [*CHECK_TEXTS, "".join(texts[:2000]), *texts])
        tmp.chmod(0o755)  # mkdtemp's folder is private
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out
