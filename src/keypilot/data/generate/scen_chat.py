"""Chat scenarios: English and Chinese threads, and reaction-heavy threads.

The screen matters for the labels here: the last incoming bubble (often a question)
decides the suggested reply when the field is empty, a Chinese thread calls for the ZH
layout before anything is typed, and a thread full of reactions calls for EMOJI.
"""

from __future__ import annotations

import random

from keypilot.data.generate import phrasebank
from keypilot.data.generate.corpus import REACTIONS, Corpus
from keypilot.data.generate.phrases import EN_DAYS, EN_MEALS, EN_QA, EN_WHEN, ZH_FILLERS, ZH_QA, ZH_TEMPLATES
from keypilot.data.generate.scenes import Bubble, Moment, Screen, User, faker_for
from keypilot.data.generate.stories import decorate, short_phrase, typing_moments
from keypilot.labels import is_emoji, lang_of

Scenario = tuple[Screen, list[Moment], str]


def fill_en(template: str, rng: random.Random) -> str:
    day, day2 = rng.sample(EN_DAYS, 2)
    return template.format(when=rng.choice(EN_WHEN), meal=rng.choice(EN_MEALS), day=day, day2=day2)


def fill_zh(template: str, rng: random.Random, corpus: Corpus) -> str:
    return template.format(**{slot: rng.choice(corpus.zh_fillers.get(slot, words)) for slot, words in ZH_FILLERS.items()})


def clock(rng: random.Random, zh: bool) -> str:
    h, m = rng.randint(7, 23), rng.randint(0, 59)
    if zh:
        return rng.choice(("", "昨天 ", "上午 " if h < 12 else "下午 ")) + f"{h}:{m:02d}"
    return rng.choice((f"{h}:{m:02d}", f"{(h - 1) % 12 + 1}:{m:02d} {'AM' if h < 12 else 'PM'}"))


def _suggest(reply: str, layout: str | None = None) -> list[Moment]:
    if not short_phrase(reply):
        return []
    return [Moment("", "suggestion", reply, layout or lang_of(reply), "accept_suggestion")]


def _thread(lines: list[tuple[bool, str]], rng: random.Random, zh: bool, group: list[str]) -> list[Bubble]:
    bubbles = []
    for mine, text in lines:
        sender = rng.choice(group) if group and not mine else ""
        bubbles.append(Bubble(text, mine, clock(rng, zh) if rng.random() < 0.35 else "", sender=sender))
    return bubbles


def chat_en(rng: random.Random, corpus: Corpus, user: User) -> Scenario:
    conv = rng.choice(corpus.en_convs)
    start = rng.randrange(max(1, len(conv) - 3))
    window = conv[start : start + rng.randint(3, 8)]
    me = window[-1][0]  # the last message is the one the user is about to write
    history = [(s == me, t) for s, t in window[:-1]]
    fk = faker_for("en_US", rng.getrandbits(32))
    group = [fk.first_name() for _ in range(3)] if rng.random() < 0.15 else []
    moments: list[Moment] = []
    r = rng.random()
    if r < 0.3:
        q, replies = rng.choice(EN_QA)
        history.append((False, fill_en(q, rng)))
        reply = fill_en(rng.choice(replies), rng)
    elif r < 0.6 and corpus.en_pairs:
        q, reply = rng.choice(corpus.en_pairs)
        history.append((False, q))
    elif r < 0.78:
        reply = window[-1][1]
        if history and history[-1][0]:
            history.append((False, conv[max(0, start - 1)][1]))
    else:  # a short everyday exchange from the hand-written bank
        history.append((False, phrasebank.line("en", rng)))
        reply = phrasebank.line("en", rng)
    history = _emojify(history, rng, corpus, zh=False)
    reply = decorate(reply, _mirroring(user, history), rng, corpus, zh=False)
    if not history[-1][0] and history[-1][1].rstrip().endswith("?"):
        moments += _suggest(reply)
    moments += typing_moments(reply, rng, corpus)
    screen = Screen(
        app="chat", ui_lang="en", title=", ".join(group) if group else fk.name(),
        subtitle=rng.choice(("online", "Active now", "last seen today at " + clock(rng, False), "")),
        bubbles=_thread(history[-7:], rng, False, group), placeholder=rng.choice(("Message", "iMessage", "Type a message", "Aa")),
    )
    return screen, moments, rng.choice(("EN", "EN", "EN", "EMOJI", "NUM", "SYM"))


def _zh_line(rng: random.Random, corpus: Corpus) -> str:
    if rng.random() < 0.3:
        return phrasebank.line("zh", rng)
    if rng.random() < 0.45 and corpus.zh_lines:
        return rng.choice(corpus.zh_lines)
    return fill_zh(rng.choice(ZH_TEMPLATES), rng, corpus)


def _code_switch(text: str, rng: random.Random) -> str:
    """Bilingual users drop English words into Chinese chat."""
    words = ("OK", "ok", "meeting", "deadline", "check一下", "hhh", "lol", "bye", "sorry", "nice")
    return rng.choice((f"{rng.choice(words)}，{text}", f"{text} {rng.choice(words)}"))


def chat_zh(rng: random.Random, corpus: Corpus, user: User) -> Scenario:
    history = [(rng.random() < 0.45, _zh_line(rng, corpus)) for _ in range(rng.randint(2, 6))]
    r = rng.random()
    if r < 0.55:
        q, replies = rng.choice(ZH_QA)
        history.append((False, fill_zh(q, rng, corpus)))
        reply = fill_zh(rng.choice(replies), rng, corpus)
    elif r < 0.75 and corpus.zh_pairs:
        q, reply = rng.choice(corpus.zh_pairs)
        history.append((False, q))
    else:
        history.append((False, _zh_line(rng, corpus)))
        reply = _zh_line(rng, corpus)
    if user.lang == "bi" and rng.random() < 0.5:
        reply = _code_switch(reply, rng)
    history = _emojify(history, rng, corpus, zh=True)
    reply = decorate(reply, _mirroring(user, history), rng, corpus, zh=True)
    moments = _suggest(reply) if history[-1][1][-1:] in "？?吗" else []
    moments += typing_moments(reply, rng, corpus)
    fk = faker_for("zh_CN", rng.getrandbits(32))
    group = [fk.name() for _ in range(3)] if rng.random() < 0.2 else []
    screen = Screen(
        app="chat", ui_lang="zh", title=rng.choice(("相亲相爱一家人", "项目组", "周末约饭群")) if group else fk.name(),
        subtitle=rng.choice(("", "在线", "对方正在输入...")),
        bubbles=_thread(history[-7:], rng, True, group), placeholder=rng.choice(("", "发消息", "输入消息")),
    )
    return screen, moments, rng.choice(("ZH", "ZH", "ZH", "EN", "EMOJI"))


def chat_reactions(rng: random.Random, corpus: Corpus, user: User) -> Scenario:
    """A thread where people answer with emoji: the screen says EMOJI before anything is typed."""
    zh = user.lang == "zh" or (user.lang == "bi" and rng.random() < 0.5)
    history: list[tuple[bool, str]] = []
    for _ in range(rng.randint(3, 7)):
        mine = rng.random() < 0.4
        if rng.random() < 0.5:
            text = "".join(rng.choice(REACTIONS) for _ in range(rng.randint(1, 3)))
        else:
            base = _zh_line(rng, corpus) if zh else rng.choice(rng.choice(corpus.en_convs))[1]
            matches = corpus.emoji_for(base, zh) or [rng.choice(REACTIONS)]
            text = base + " " + rng.choice(matches[:3]) * rng.randint(1, 3)
        history.append((mine, text))
    history[-1] = (False, history[-1][1])
    bubbles = _thread(history, rng, zh, [])
    for b in bubbles:
        if rng.random() < 0.4:
            b.reactions = "".join(rng.sample(REACTIONS, rng.randint(1, 3)))
    last = history[-1][1]
    pool = (corpus.emoji_for(last, zh)[:3] or []) + list(user.favourite_emoji) + [rng.choice(REACTIONS)]
    emo = rng.choice(pool)
    reply_emoji = emo * rng.choice((1, 1, 2, 3))
    moments = [Moment("", "suggestion", reply_emoji, "EMOJI", "accept_suggestion")]
    lead = rng.choice(("哈哈哈", "笑死", "太可爱了", "好的", "666")) if zh else rng.choice(("haha", "lol", "omg", "love it", "same", "so cute"))
    sep = "" if zh else " "
    moments.append(Moment(lead + sep, "auto_completion", emo, "EMOJI", "type"))
    moments.append(Moment(lead + sep + emo, "auto_completion", emo, "EMOJI", "type"))
    moments += typing_moments(lead + sep + reply_emoji, rng, corpus)[:2]
    fk = faker_for("zh_CN" if zh else "en_US", rng.getrandbits(32))
    screen = Screen(
        app="chat", ui_lang="zh" if zh else "en", title=fk.name(), subtitle="",
        bubbles=bubbles, placeholder="发消息" if zh else "Message",
    )
    return screen, moments, rng.choice(("EMOJI", "EN", "ZH" if zh else "EN"))


def _emojify(history: list[tuple[bool, str]], rng: random.Random, corpus: Corpus, zh: bool) -> list[tuple[bool, str]]:
    """Some threads are written with emoji: meaning-matched ones on a few of the messages."""
    if rng.random() > 0.3:
        return history
    out = []
    for mine, text in history:
        if rng.random() < 0.5:
            matches = corpus.emoji_for(text, zh)[:3] or [rng.choice(REACTIONS)]
            text = text.rstrip("。.!！") + ("" if zh else " ") + rng.choice(matches) * rng.choice((1, 1, 2, 3))
        out.append((mine, text))
    return out


def _mirroring(user: User, history: list[tuple[bool, str]]) -> User:
    """People answer emoji with emoji: after an incoming message with emoji, the user's own
    rate rises (the screen, not the user's history, says an emoji may come next)."""
    if history and not history[-1][0] and any(is_emoji(ch) for ch in history[-1][1]):
        return User(**{**user.__dict__, "emoji_rate": max(user.emoji_rate, 0.6)})
    return user


def chat_numbers(rng: random.Random, corpus: Corpus, user: User) -> Scenario:
    """An ordinary chat where the answer is a number: a room, an order or tracking number, an
    amount, a time, a code. Often the number was posted earlier in the thread, so the screen
    holds it; the keyboard must turn to NUM in the middle of a sentence."""
    zh = user.lang == "zh" or (user.lang == "bi" and rng.random() < 0.4)
    lang = "zh" if zh else "en"
    fact, question, replies, kind = rng.choice(phrasebank.NUMBER_TALK[lang])
    number = phrasebank.number_for(kind, rng, zh)
    history = [(rng.random() < 0.45, phrasebank.line(lang, rng)) for _ in range(rng.randint(1, 4))]
    shown = rng.random() < 0.65
    if shown:  # posted a little earlier, by either side
        history.insert(rng.randint(max(0, len(history) - 2), len(history)), (rng.random() < 0.5, fact.format(n=number)))
    history.append((False, question))
    reply = rng.choice(replies).format(n=number)
    moments = (_suggest(reply) if shown else []) + typing_moments(reply, rng, corpus, slip_rate=0.0)
    fk = faker_for("zh_CN" if zh else "en_US", rng.getrandbits(32))
    screen = Screen(
        app="chat", ui_lang=lang, title=fk.name(), subtitle=rng.choice(("", "在线") if zh else ("", "online", "Active now")),
        bubbles=_thread(history[-7:], rng, zh, []), placeholder=rng.choice(("发消息", "") if zh else ("Message", "iMessage", "Text message")),
    )
    return screen, moments, rng.choice(("ZH", "ZH", "NUM", "EN") if zh else ("EN", "EN", "NUM", "SYM"))
