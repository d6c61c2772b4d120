"""What a screen shows and what the user does on it, before anything is drawn.

A scenario builds one :class:`Screen` per typing session and a list of :class:`Moment`s
(keystroke states with their labels); the renderer turns a screen plus one moment's
field text and keyboard into a screenshot.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import lru_cache

from faker import Faker

from keypilot.data.generate.corpus import REACTIONS

NUM_USERS = 300


@dataclass
class Bubble:
    text: str
    mine: bool
    time: str = ""
    reactions: str = ""  # emoji reaction chips under the bubble
    sender: str = ""  # group chats show the sender's name above incoming bubbles


@dataclass
class Field:
    kind: str  # phone, email, password, code, amount, name, text, search, url, to, subject
    label: str
    value: str = ""
    placeholder: str = ""


@dataclass
class Banner:
    app: str
    title: str
    body: str


@dataclass
class Screen:
    app: str  # chat, form, email, search, social, notes
    ui_lang: str  # en or zh: the language of the app chrome
    title: str
    subtitle: str = ""
    bubbles: list[Bubble] = field(default_factory=list)
    fields: list[Field] = field(default_factory=list)
    focus: int = -1  # index of the focused entry of ``fields``; -1 = the app's main input
    blocks: list[str] = field(default_factory=list)  # body text: post, note lines, quoted mail, search history
    card: list[tuple[str, str]] = field(default_factory=list)  # invoice lines (label, value)
    banner: Banner | None = None
    placeholder: str = ""
    button: str = ""  # a primary action button under a form


@dataclass
class Moment:
    """One keystroke state: the focused field holds ``context``; the labels say what comes next."""

    context: str
    task: str
    target: str
    layout: str
    action: str
    candidates: list[str] = field(default_factory=list)  # IME candidate bar while composing pinyin


@dataclass(frozen=True)
class User:
    """A stable person: the same ``uid`` has the same habits and details in every data set."""

    uid: int
    lang: str  # en, zh or bi (code-switching)
    emoji_rate: float
    formal: bool
    typo_rate: float
    favourite_emoji: tuple[str, ...]
    name: str
    email: str
    phone: str
    dark_theme: bool


_FAKERS: dict[str, Faker] = {}


def _faker(locale: str) -> Faker:
    if locale not in _FAKERS:
        _FAKERS[locale] = Faker(locale)
    return _FAKERS[locale]


def faker_for(locale: str, seed: int) -> Faker:
    """A shared Faker re-seeded for this call, so output depends on ``seed`` only."""
    fk = _faker(locale)
    fk.seed_instance(seed)
    return fk


@lru_cache(maxsize=NUM_USERS)
def get_user(uid: int) -> User:
    rng = random.Random(f"user-{uid}")
    lang = rng.choices(("en", "zh", "bi"), weights=(45, 38, 17))[0]
    fk = faker_for("zh_CN" if lang == "zh" else "en_US", uid)
    heavy = rng.random() < 0.3
    return User(
        uid=uid,
        lang=lang,
        emoji_rate=rng.uniform(0.35, 0.8) if heavy else rng.uniform(0.0, 0.2),
        formal=rng.random() < 0.3,
        typo_rate=rng.uniform(0.1, 0.5),
        favourite_emoji=tuple(rng.sample(REACTIONS, 3)),
        name=fk.name(),
        email=fk.email().split("@")[0] + "@" + rng.choice(("gmail.com", "outlook.com", "qq.com", "163.com", "yahoo.com", "icloud.com")),
        phone=_phone(rng, lang),
        dark_theme=rng.random() < 0.35,
    )


def _phone(rng: random.Random, lang: str) -> str:
    if lang == "zh":
        return rng.choice(("138", "139", "186", "152", "177", "135")) + "".join(rng.choices("0123456789", k=8))
    return "".join(rng.choices("23456789", k=1)) + "".join(rng.choices("0123456789", k=9))
