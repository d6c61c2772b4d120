"""Hand-written chat lines in both languages, with the lengths people really send.

Real messaging is mostly short: a third of replies are one to three words, most are under
ten, and a few run long. The banks below are grouped that way (``SHORT``, ``MEDIUM``,
``LONG``) and :func:`line` draws from them with those weights. ``NUMBER_TALK`` holds the
everyday exchanges where a number is the answer (rooms, orders, tracking, amounts, times,
codes): each is (the fact as someone posts it, the question, replies), with ``{n}`` the number.
"""

from __future__ import annotations

import random

EN_SHORT = [
    "ok", "ok!", "sure", "yep", "nope", "lol", "haha true", "omg", "thanks!", "thank you", "np", "on it", "sounds good",
    "see you soon", "be there in 5", "running late", "just landed", "call me", "good night", "morning!", "love that",
    "same here", "no way", "for real?", "got it", "perfect", "nice one", "miss you", "congrats!!", "what happened?",
    "where are you?", "you up?", "all good", "not yet", "maybe later", "can't wait", "i'm outside", "here now",
    "ty", "k", "coming", "leaving now", "almost home", "so tired", "let's go", "yes please", "no worries", "sorry!",
]
EN_MEDIUM = [
    "I'll be there around seven", "did you eat already?", "can you grab milk on the way home",
    "just finished work, heading out now", "the meeting got moved to tomorrow", "let me check and get back to you",
    "traffic is terrible today", "I left my charger at your place", "we should do this again next week",
    "the kids are finally asleep", "can we push dinner to 8?", "I'm at the front desk", "send me the photos from last night",
    "happy birthday!! have the best day", "don't forget the tickets", "text me when you get there",
    "my phone is about to die", "the package says it was delivered", "she said yes!!", "the train is delayed again",
    "are we still on for Saturday?", "I think I left my keys in the car", "did you see the game last night",
    "can you call me when you're free", "I'll pick you up at the station", "mom wants to know if you're coming",
    "the wifi password is on the fridge", "just booked the flights", "lunch is on me today", "how did the interview go?",
]
EN_LONG = [
    "sorry I missed your call, I was in a meeting all afternoon and my phone was on silent",
    "ok so the plan is we meet at the station at six, grab food, and then walk over to the concert together",
    "I talked to the landlord and he said the plumber can come on Thursday morning if someone is home",
    "honestly I think we should just cancel, the weather looks awful and half the group already dropped out",
    "just got the results back and everything looks fine, the doctor said to come back in six months",
    "can you remind me what time the recital starts? I want to get there early to get good seats",
]
ZH_SHORT = [
    "好的", "好", "嗯嗯", "收到", "哈哈哈", "可以", "行", "没问题", "谢谢", "谢啦", "不用了", "在吗", "到了", "马上",
    "等我一下", "晚安", "早", "辛苦了", "加油", "太好了", "真的假的", "笑死", "我也是", "还没", "怎么了", "稍等",
    "好呀", "拜拜", "在路上", "到家了", "想你", "去不去", "走吧", "睡了吗", "知道了", "算了", "可以可以", "好滴",
]
ZH_MEDIUM = [
    "我刚下班，马上过去", "你吃饭了没", "帮我带杯咖啡吧", "会议改到明天上午了", "我到楼下了，你下来吧", "路上有点堵，晚十分钟",
    "钥匙放在门口的鞋柜里", "周末一起去爬山吗", "快递到了，帮我拿一下", "明天记得带伞", "这家店的菜真不错", "我手机快没电了",
    "照片发我一下", "今天太累了，想早点睡", "票已经买好了", "生日快乐，天天开心", "晚上想吃什么", "孩子们都睡着了",
    "你到了跟我说一声", "我在地铁上，等下回你", "面试怎么样", "妈问你周末回不回来", "电影几点开始", "这个周五有空吗",
]
ZH_LONG = [
    "不好意思刚才在开会没看到消息，晚上我们再商量一下具体怎么安排吧",
    "我跟房东说了，他说周四上午可以让师傅来修，你那天在家吗",
    "我们六点在地铁站见，先去吃饭，吃完再一起走过去看演出",
    "检查结果出来了，医生说都挺好的，半年以后再来复查就行",
]

# (how the fact appears in the thread, the question, replies): {n} is the number.
NUMBER_TALK = {
    "en": [
        ("Booked! Room {n} at the Marriott", "what's the room number?", ["{n}", "Room {n}", "it's {n}"], "room"),
        ("Order #{n} confirmed, arriving Friday", "can you send me the order number?", ["{n}", "#{n}", "it's {n}"], "order"),
        ("Tracking number: {n}", "what's the tracking number?", ["{n}", "here {n}"], "tracking"),
        ("dinner came to ${n} total", "how much do I owe you?", ["${n}", "{n} each", "just send {n}"], "amount"),
        ("the gate code is {n}", "what's the gate code again?", ["{n}", "{n} then #"], "code"),
        ("my new number is {n}", "what's your new number?", ["{n}"], "phone"),
        ("we're at table {n} by the window", "which table are you at?", ["{n}", "table {n}"], "table"),
        ("movie starts at {n}", "what time is the movie?", ["{n}", "at {n}", "{n} I think"], "time"),
        ("flight lands at {n}, terminal 2", "when do you land?", ["{n}", "around {n}"], "time"),
        ("it's {n} Maple Street, the blue house", "what's the address?", ["{n} Maple Street", "{n} Maple"], "house"),
        ("the total was ${n}", "how much was it?", ["${n}", "{n} dollars", "like {n}"], "amount"),
        ("parking spot {n}, level B", "where did you park?", ["{n}", "spot {n}"], "room"),
    ],
    "zh": [
        ("订好了，{n}房间", "房间号多少？", ["{n}", "{n}房间", "{n}号房"], "room"),
        ("订单号{n}，周五到", "订单号发我一下", ["{n}", "订单号{n}"], "order"),
        ("快递单号：{n}", "快递单号多少？", ["{n}"], "tracking"),
        ("一共{n}块", "我该给你多少钱？", ["{n}", "{n}块", "给{n}就行"], "amount"),
        ("门禁密码{n}", "门禁密码多少来着？", ["{n}", "{n}#"], "code"),
        ("我换号了，新号码{n}", "你新手机号多少？", ["{n}"], "phone"),
        ("我们在{n}号桌", "你们坐哪桌？", ["{n}", "{n}号桌"], "table"),
        ("电影{n}开始", "电影几点开始？", ["{n}", "{n}开始"], "time"),
        ("取件码{n}", "取件码多少？", ["{n}"], "pickup"),
        ("车停在{n}号车位", "车停哪了？", ["{n}", "{n}号车位"], "room"),
    ],
}


def number_for(kind: str, rng: random.Random, zh: bool) -> str:
    """A plausible number of that kind, as people write it."""
    digits = lambda k: "".join(rng.choices("0123456789", k=k))  # noqa: E731
    if kind == "room":
        return str(rng.randint(1, 30)) + f"{rng.randint(1, 40):02d}"
    if kind == "order":
        return str(rng.randint(1, 9)) + digits(rng.choice((7, 9, 11)))
    if kind == "tracking":
        return str(rng.randint(1, 9)) + digits(rng.choice((11, 13)))
    if kind == "amount":
        return rng.choice((str(rng.randint(8, 260)), f"{rng.randint(8, 260)}.{rng.choice(('50', '25', '99', '80'))}"))
    if kind == "code":
        return digits(rng.choice((4, 4, 6)))
    if kind == "phone":
        return rng.choice(("138", "139", "186", "159")) + digits(8) if zh else str(rng.randint(2, 9)) + digits(9)
    if kind == "table":
        return str(rng.randint(1, 48))
    if kind == "time":
        return f"{rng.randint(1, 11) if not zh else rng.randint(8, 22)}:{rng.choice(('00', '15', '30', '45'))}"
    if kind == "house":
        return str(rng.randint(2, 2400))
    return f"{rng.randint(1, 9)}-{rng.randint(1, 6)}-{digits(4)}"  # pickup codes: shelf-layer-number


def line(lang: str, rng: random.Random) -> str:
    """A chat line with a realistic length: mostly short, sometimes medium, rarely long."""
    short, medium, long = (EN_SHORT, EN_MEDIUM, EN_LONG) if lang == "en" else (ZH_SHORT, ZH_MEDIUM, ZH_LONG)
    bank = rng.choices((short, medium, long), weights=(45, 45, 10))[0]
    return rng.choice(bank)
