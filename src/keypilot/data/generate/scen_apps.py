"""Non-chat scenarios: codes, payments, sign-up forms, e-mail, search, social posts, notes.

Here the screen decides labels through the focused field's kind (a phone or code field
needs NUM) and through values printed elsewhere on the screen (a one-time code in a
notification banner, the total of an invoice, the recipient of an e-mail, recent searches).
"""

from __future__ import annotations

import random

from keypilot.data.generate import phrases as P
from keypilot.data.generate.corpus import Corpus
from keypilot.data.generate.scen_chat import Scenario, fill_zh
from keypilot.data.generate.scenes import Banner, Field, Moment, Screen, User, faker_for
from keypilot.data.generate.stories import decorate, short_phrase, typing_moments
from keypilot.labels import lang_of


def _ui_zh(user: User, rng: random.Random) -> bool:
    return user.lang == "zh" or (user.lang == "bi" and rng.random() < 0.5)


def _fields(zh: bool, kinds: list[str], values: dict[str, str]) -> list[Field]:
    labels = P.FIELD_LABELS["zh" if zh else "en"]
    return [Field(k, labels[k], values.get(k, ""), labels[k]) for k in kinds]


def _digits_moments(value: str, rng: random.Random, suggest: bool = True) -> list[Moment]:
    """Filling a numeric field with a value the screen shows: accept it whole or type part of it."""
    out = [Moment("", "suggestion", value, lang_of(value), "accept_suggestion")] if suggest else []
    for k in sorted(rng.sample(range(1, len(value)), min(3, len(value) - 1))):
        out.append(Moment(value[:k], "auto_completion", value, lang_of(value), "type"))
    return out


def otp(rng: random.Random, corpus: Corpus, user: User) -> Scenario:
    zh = _ui_zh(user, rng)
    code = "".join(rng.choices("0123456789", k=rng.choice((4, 6, 6, 6))))
    app = rng.choice(P.APPS_ZH if zh else P.APPS_EN)
    body = rng.choice(P.OTP_TEMPLATES_ZH if zh else P.OTP_TEMPLATES_EN).format(code=code, app=app)
    masked = user.phone[:3] + "****" + user.phone[-4:]
    fields = _fields(zh, ["phone", "code"], {"phone": masked})
    screen = Screen(
        app="form", ui_lang="zh" if zh else "en", title=rng.choice(("验证手机号", "登录", "安全验证")) if zh else rng.choice(("Verify your number", "Sign in", "Two-step verification")),
        fields=fields, focus=1, banner=Banner(rng.choice(("信息", "短信")) if zh else "Messages", rng.choice(("106 9555", app, "+1 (833) 201-" + code[-4:])), body),
        blocks=[("验证码已发送至 " if zh else "We sent a code to ") + masked], button="确定" if zh else rng.choice(("Verify", "Continue", "Submit")),
    )
    return screen, _digits_moments(code, rng), rng.choice(("EN", "EN", "ZH" if zh else "EN", "NUM"))


def payment(rng: random.Random, corpus: Corpus, user: User) -> Scenario:
    zh = _ui_zh(user, rng)
    fk = faker_for("zh_CN" if zh else "en_US", rng.getrandbits(32))
    items = [(rng.choice(P.ZH_FILLERS["food"] + P.ZH_FILLERS["thing"]) if zh else rng.choice(corpus.en_words[1000:6000]).capitalize(), rng.randint(2, 200) + rng.choice((0, 0.5, 0.99, 0.25))) for _ in range(rng.randint(1, 3))]
    total = sum(v for _, v in items)
    amount = f"{total:.2f}" if rng.random() < 0.7 or total != int(total) else str(int(total))
    cur = "¥" if zh else rng.choice(("$", "$", "€", "£"))
    card = [(name, f"{cur}{v:.2f}") for name, v in items] + [("合计" if zh else "Total", f"{cur}{float(amount):.2f}")]
    fields = _fields(zh, ["amount"], {})
    fields.append(Field("text", "备注" if zh else "Note", "", "添加备注" if zh else "What's it for?"))
    screen = Screen(
        app="form", ui_lang="zh" if zh else "en", title=("付款给 " if zh else "Pay ") + (fk.company() if rng.random() < 0.5 else fk.name()),
        fields=fields, focus=0, card=card, button="确认付款" if zh else rng.choice(("Pay", "Send", "Confirm payment")),
    )
    moments = _digits_moments(amount, rng)
    return screen, moments, rng.choice(("EN", "NUM", "ZH" if zh else "EN"))


def signup(rng: random.Random, corpus: Corpus, user: User) -> Scenario:
    """A sign-up form filled top to bottom. The focus is the name, the e-mail or the phone
    field, never the password: the keyboard predicts nothing in a password field
    (``keypilot.inference.privacy``), so a keystroke there is no sample. A password filled
    earlier shows as dots above the phone field."""
    zh = _ui_zh(user, rng)
    kinds = ["name", "email", "password", "phone"]
    focus = rng.choices((0, 1, 3), weights=(1, 3, 3))[0]
    password = rng.choice(corpus.en_words[500:5000]).capitalize() + str(rng.randint(1, 2099)) + rng.choice("!@#$%&*?")
    filled = (user.name, user.email, password, user.phone)
    fields = _fields(zh, kinds, {k: v for i, (k, v) in enumerate(zip(kinds, filled)) if i < focus})
    kind = kinds[focus]
    if kind == "phone":
        moments = _digits_moments(user.phone, rng)
    elif kind == "name":
        moments = [Moment("", "suggestion", user.name, lang_of(user.name), "accept_suggestion")] + typing_moments(user.name, rng, corpus)[:3]
    else:
        local, domain = user.email.split("@")
        moments = [
            Moment("", "suggestion", user.email, "EN", "accept_suggestion"),
            Moment(local[: rng.randint(1, len(local))], "auto_completion", user.email, "EN", "type"),
            Moment(local, "auto_completion", "@", "SYM", "type"),
            Moment(local + "@" + domain[: rng.randint(0, 3)], "auto_completion", domain, "EN", "type"),
        ]
    title = rng.choice(("注册", "创建账号", "完善资料")) if zh else rng.choice(("Create account", "Sign up", "Your details"))
    screen = Screen(app="form", ui_lang="zh" if zh else "en", title=title, fields=fields, focus=focus, button="下一步" if zh else rng.choice(("Next", "Sign up", "Continue")))
    return screen, moments, rng.choice(("EN", "EN", "NUM", "SYM"))


def email(rng: random.Random, corpus: Corpus, user: User) -> Scenario:
    zh = _ui_zh(user, rng) and rng.random() < 0.5
    fk = faker_for("zh_CN" if zh else "en_US", rng.getrandbits(32))
    if zh:
        to = fk.name()
        opener = to[0] + rng.choice(("总", "经理", "老师")) + "，您好"
        body = rng.choice(("附件是本周的工作报告，请查收。", "关于明天的会议，我这边没有问题。", "感谢您的回复，我们会尽快处理。"))
        text = opener + "！" + body
    else:
        first, last = fk.first_name(), fk.last_name()
        to = f"{first} {last}"
        opener = rng.choice(P.EN_EMAIL_OPENERS).format(first=first)
        text = opener + " " + rng.choice(P.EN_EMAIL_BODIES)
        if rng.random() < 0.4:
            text += " " + rng.choice(P.EN_SIGNOFFS)
    moments = [Moment("", "suggestion", opener, lang_of(opener), "accept_suggestion")] if short_phrase(opener) else []
    moments += typing_moments(text, rng, corpus)
    subject = fk.catch_phrase() if not zh and rng.random() < 0.5 else rng.choice(("Re: 会议安排", "工作报告", "Re: 合同")) if zh else rng.choice(("Re: meeting", "Quick question", "Follow up", "Report"))
    fields = [Field("to", "收件人" if zh else "To", to), Field("subject", "主题" if zh else "Subject", subject)]
    screen = Screen(app="email", ui_lang="zh" if zh else "en", title="写邮件" if zh else rng.choice(("New Message", "Compose", "Reply")), fields=fields, focus=-1,
                    placeholder="", blocks=[] if rng.random() < 0.5 else [("—— 原邮件 ——" if zh else f"On Mon, {to} wrote:"), " ".join(rng.sample(P.EN_EMAIL_BODIES, 2)) if not zh else "请在周五前把资料发给我。"])
    return screen, moments, rng.choice(("EN", "ZH" if zh else "EN"))


def search(rng: random.Random, corpus: Corpus, user: User) -> Scenario:
    zh = _ui_zh(user, rng)
    if zh:
        recents = [fill_zh(rng.choice(("附近的{food}", "{time}天气", "{place}怎么走", "{food}做法", "{act}攻略")), rng, corpus) for _ in range(rng.randint(3, 5))]
    else:
        recents = [" ".join(rng.sample(corpus.en_words[300:4000], rng.randint(1, 3))) for _ in range(rng.randint(3, 5))]
        recents[0] = rng.choice(("weather ", "pizza near me", "flights to ", "how to ", "")) + recents[0] if rng.random() < 0.5 else recents[0]
    query = recents[0] if rng.random() < 0.5 else recents[rng.randrange(len(recents))]
    moments = [Moment("", "suggestion", recents[0], lang_of(recents[0]), "accept_suggestion")] if short_phrase(recents[0]) else []
    moments += typing_moments(query, rng, corpus)
    kind = "url" if rng.random() < 0.3 else "search"
    screen = Screen(app="search", ui_lang="zh" if zh else "en", title=rng.choice(("搜索", "百度", "淘宝")) if zh else rng.choice(("Search", "Chrome", "Safari", "Maps")),
                    fields=_fields(zh, [kind], {}), focus=0, blocks=recents)
    return screen, moments, rng.choice(("EN", "ZH" if zh else "EN"))


def social(rng: random.Random, corpus: Corpus, user: User) -> Scenario:
    zh = _ui_zh(user, rng)
    heavy = User(**{**user.__dict__, "emoji_rate": max(user.emoji_rate, 0.8)})
    base = fill_zh(rng.choice(P.ZH_TEMPLATES), rng, corpus) if zh else rng.choice(P.EN_POSTS)
    text = decorate(base, heavy, rng, corpus, zh)
    if rng.random() < 0.5:
        text += " #" + (rng.choice(("周末", "美食", "日常")) if zh else rng.choice(("weekend", "foodie", "nofilter", "blessed", "summer")))
    moments = typing_moments(text, rng, corpus)
    screen = Screen(app="social", ui_lang="zh" if zh else "en", title=rng.choice(("发朋友圈", "发布动态", "发微博")) if zh else rng.choice(("New post", "Create post", "Tweet")),
                    placeholder="这一刻的想法..." if zh else "What's happening?", blocks=[user.name])
    return screen, moments, rng.choice(("EN", "EMOJI", "ZH" if zh else "EN"))


def notes(rng: random.Random, corpus: Corpus, user: User) -> Scenario:
    zh = _ui_zh(user, rng)
    if zh:
        lines = [f"{i + 1}. " + rng.choice(P.ZH_FILLERS["thing"] + P.ZH_FILLERS["food"]) + rng.choice(("", f" {rng.randint(1, 5)}个")) for i in range(rng.randint(1, 4))]
        text = f"{len(lines) + 1}. " + fill_zh(rng.choice(P.ZH_TEMPLATES), rng, corpus)
    else:
        lines = [f"- {rng.randint(1, 6)} {rng.choice(corpus.en_words[800:5000])}" for _ in range(rng.randint(1, 4))]
        conv = rng.choice(corpus.en_convs)
        text = f"{rng.randint(2, 12)} " + rng.choice(conv)[1] if rng.random() < 0.4 else rng.choice(conv)[1]
    moments = typing_moments(text, rng, corpus)
    title = rng.choice(P.NOTE_TITLES_ZH if zh else P.NOTE_TITLES_EN)
    screen = Screen(app="notes", ui_lang="zh" if zh else "en", title=title, blocks=lines, placeholder="")
    return screen, moments, rng.choice(("EN", "NUM", "ZH" if zh else "EN"))
