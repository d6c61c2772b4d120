"""Replies: a response set learned from the training split.

Smart-reply keyboards answer from a set of replies that people actually sent, chosen by the
message being answered. Here the set is every (message, reply) pair of the training split:
the suggestion typed into an empty field and the last incoming message on its screen
(``priors.screen.read_screen``). A new message is matched against the stored ones by the
cosine of their IDF-weighted token sets (words, Chinese characters and their bigrams); the
replies of the closest messages share a mass equal to the best match's similarity, so a
message unlike any seen gets a faint list and the network's own suggestion wins.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from keypilot.priors import store
from keypilot.priors.keystroke import PriorCandidate
from keypilot.priors.text import clean, tokens

NEIGHBOURS = 5  # stored messages whose replies are offered
MIN_SIMILARITY = 0.35  # below this a stored message is not the same question
MAX_PAIRS = 50_000


def message_terms(message: str) -> set[str]:
    """The terms a message is matched on: its tokens and adjacent token pairs."""
    toks = tokens(clean(message)[-200:])
    return set(toks) | {f"{a} {b}" for a, b in zip(toks, toks[1:])}


class ReplyPriors:
    """Query side. File: ``replies.json`` (messages' terms, their replies with counts, IDF)."""

    def __init__(self, directory: Path) -> None:
        data = store.load_json(Path(directory) / "replies.json")
        self.idf: dict[str, float] = data["idf"]
        self.messages: list[tuple[list[str], list[tuple[str, int]]]] = [(m["terms"], m["replies"]) for m in data["messages"]]
        self.norms = [math.sqrt(sum(self.idf.get(t, 0.0) ** 2 for t in terms)) or 1.0 for terms, _ in self.messages]
        self.index: dict[str, list[int]] = defaultdict(list)
        for i, (terms, _) in enumerate(self.messages):
            for term in terms:
                self.index[term].append(i)

    def suggest(self, message: str, k: int) -> list[PriorCandidate]:
        """Replies to ``message``, best first (``logp`` sums to the best similarity at most)."""
        terms = [t for t in message_terms(message) if t in self.idf]
        if not terms:
            return []
        norm = math.sqrt(sum(self.idf[t] ** 2 for t in terms))
        overlap: Counter[int] = Counter()
        for term in terms:
            for i in self.index.get(term, ()):
                overlap[i] += self.idf[term] ** 2
        scored = sorted(((w / (norm * self.norms[i]), i) for i, w in overlap.items()), reverse=True)
        scored = [(sim, i) for sim, i in scored[:NEIGHBOURS] if sim >= MIN_SIMILARITY]
        if not scored:
            return []
        weights: Counter[str] = Counter()
        for sim, i in scored:
            replies = self.messages[i][1]
            total = sum(n for _, n in replies)
            for reply, n in replies:
                weights[reply] += sim * n / total
        mass = scored[0][0] / sum(weights.values())
        return [PriorCandidate(reply, math.log(w * mass), "reply") for reply, w in weights.most_common(k)]


def build_replies(pairs: Iterable[tuple[str, str]], out: Path) -> dict:
    """Write ``replies.json`` from (message, reply) pairs of the training split."""
    by_message: dict[frozenset[str], Counter] = defaultdict(Counter)
    for message, reply in list(pairs)[:MAX_PAIRS]:
        terms = frozenset(message_terms(message))
        if terms and reply.strip():
            by_message[terms][clean(reply)] += 1
    df: Counter[str] = Counter(t for terms in by_message for t in terms)
    n = max(len(by_message), 1)
    idf = {t: math.log(1 + n / c) for t, c in df.items()}
    messages = [{"terms": sorted(terms), "replies": replies.most_common(16)} for terms, replies in by_message.items()]
    store.save_json({"idf": idf, "messages": messages}, out / "replies.json")
    return {"reply_messages": len(messages), "reply_pairs": sum(sum(r.values()) for r in by_message.values())}
