"""Record-level sampling: users, typing sessions and their steps, without drawing anything.

Sessions are built in order from ``(seed, session index)`` alone, so the labels (and the
split a session lands in) never depend on how many worker processes render the images.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from keypilot.data.generate import scen_apps, scen_chat
from keypilot.data.generate.corpus import Corpus, load_corpus
from keypilot.data.generate.scenes import NUM_USERS, Moment, Screen, User, get_user
from keypilot.data.generate.stories import pick_moments
from keypilot.labels import lang_of

ScenarioFn = Callable[[random.Random, Corpus, User], scen_chat.Scenario]

# name -> (function, weight for en / zh / bilingual users)
SCENARIOS: dict[str, tuple[ScenarioFn, tuple[float, float, float]]] = {
    "chat-en": (scen_chat.chat_en, (30, 0, 16)),
    "chat-zh": (scen_chat.chat_zh, (0, 34, 20)),
    "reactions": (scen_chat.chat_reactions, (13, 12, 13)),
    "chat-numbers": (scen_chat.chat_numbers, (9, 9, 9)),
    "otp": (scen_apps.otp, (10, 10, 10)),
    "payment": (scen_apps.payment, (7, 7, 7)),
    "signup": (scen_apps.signup, (10, 8, 9)),
    "email": (scen_apps.email, (8, 4, 6)),
    "search": (scen_apps.search, (7, 8, 7)),
    "social": (scen_apps.social, (8, 8, 8)),
    "notes": (scen_apps.notes, (6, 6, 6)),
}
SPLITS: tuple[str, ...] = ("train",) * 8 + ("val", "test")
KEYBOARD_SHOWN = 0.86  # the other screenshots were taken with the keyboard down
# Rarer labels are favoured when choosing which keystrokes of a session become samples.
TASK_WEIGHT = {"error_correction": 3.0, "auto_completion": 1.0, "suggestion": 8.0}
# ...and rarer layouts too (a keep-probability per moment, then a choice weight).
LAYOUT_PICK = {"EN": 1.0, "ZH": 1.0, "SYM": 6.0, "EMOJI": 4.0, "NUM": 1.2}
LAYOUT_WEIGHT = {"EN": 0.5, "ZH": 0.8, "SYM": 1.0, "EMOJI": 1.0, "NUM": 1.0}


@dataclass
class Step:
    """One sample before rendering."""

    id: str
    split: str
    session: str
    step: int
    scenario: str
    user: User
    screen: Screen
    moment: Moment
    prev_layout: str
    keyboard: bool
    render_seed: int  # per-session look (same theme and phone within a session)
    image_ext: str


def _session_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"keypilot-{seed}-{index}")


def build_session(seed: int, index: int, max_steps: int, corpus: Corpus, whole: bool = False) -> list[Step]:
    """The steps of session ``index``: ``max_steps`` keystroke states picked (rarer tasks and
    layouts favoured), or with ``whole`` every labelled state of the message in typing order."""
    rng = _session_rng(seed, index)
    user = get_user(rng.randrange(NUM_USERS))
    col = ("en", "zh", "bi").index(user.lang)
    names = list(SCENARIOS)
    moments: list[Moment] = []
    while not moments:  # a scenario can come out empty (e.g. no typo possible); draw again
        name = rng.choices(names, weights=[SCENARIOS[n][1][col] for n in names])[0]
        screen, all_moments, prev = SCENARIOS[name][0](rng, corpus, user)
        weights = {t: w * (0.6 + 2 * user.typo_rate if t == "error_correction" else 1) for t, w in TASK_WEIGHT.items()}
        moments = all_moments if whole else pick_moments(_weighted(all_moments, rng), max_steps, rng, weights, LAYOUT_PICK)
    session = f"s{seed}-{index:06d}"
    render_seed = rng.getrandbits(32)
    ext = "png" if rng.random() < 0.3 else "jpg"
    steps = []
    for k, m in enumerate(moments):
        if lang_of(m.target) != m.layout:
            raise AssertionError(f"scenario {name} made a layout {m.layout} for target {m.target!r}")
        sid = f"{name}-{index:06d}-{k}"
        steps.append(Step(sid, SPLITS[_split_slot(seed, index)], session, k, name, user, screen, m, prev, rng.random() < KEYBOARD_SHOWN, render_seed, ext))
        prev = m.layout
    return steps


def _weighted(moments: list[Moment], rng: random.Random) -> list[Moment]:
    """Thin out common layouts by dropping some of their moments (keeps typing order)."""
    keep = [m for m in moments if m.task == "suggestion" or rng.random() < LAYOUT_WEIGHT[m.layout]]
    return keep or moments


def _split_slot(seed: int, index: int) -> int:
    """Sessions are dealt to splits in blocks of ten: exactly 8/1/1 per block, shuffled."""
    order = list(range(10))
    random.Random(f"split-{seed}-{index // 10}").shuffle(order)
    return order[index % 10]


def iter_steps(num: int, seed: int = 0, whole_sessions: bool = False) -> Iterator[Step]:
    """The first ``num`` samples of the data set for ``seed``, session by session.

    ``whole_sessions``: every labelled keystroke state of each message instead of a few picked
    ones (the last session may be cut at ``num``): typing sessions as a keyboard logs them, for
    judging layout stability (switches shown against switches needed).
    """
    if num < 0:
        raise ValueError(f"num must be >= 0, got {num}")
    corpus = load_corpus()
    plan = random.Random(f"plan-{seed}")
    made, index = 0, 0
    while made < num:
        want = min(plan.choice((1, 2, 2, 3, 3, 4, 5)), num - made)
        for step in build_session(seed, index, want, corpus, whole_sessions):
            if made == num:
                break
            yield step
            made += 1
        index += 1


_TRAILING_PINYIN = re.compile(r"[a-z]+$")


def composing_buffer(m: Moment) -> str:
    """The pinyin at the end of the context while a Chinese word is being composed."""
    if not m.candidates:
        return ""
    match = _TRAILING_PINYIN.search(m.context)
    return match.group(0) if match else ""
