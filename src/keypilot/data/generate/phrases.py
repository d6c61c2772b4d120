"""Hand-written phrase material: Chinese chat templates, short question/answer pairs and
the wording of app chrome. Slots in braces are filled from ``ZH_FILLERS``/faker/wordfreq.

Kept short and everyday on purpose: suggestions must be at most five tokens, and the
questions are the kind a phone screen shows in its last chat bubble.
"""

from __future__ import annotations

ZH_FILLERS: dict[str, list[str]] = {
    "time": ["明天", "今天晚上", "周末", "下午", "后天", "周五", "中午", "晚上", "下周一", "早上"],
    "food": ["火锅", "烧烤", "奶茶", "小龙虾", "饺子", "拉面", "寿司", "麻辣烫", "咖啡", "炸鸡", "披萨", "米线"],
    "act": ["看电影", "逛街", "打球", "吃饭", "跑步", "唱歌", "爬山", "开会", "加班", "健身", "复习", "打游戏"],
    "place": ["公司", "学校", "地铁站", "商场", "图书馆", "医院", "机场", "咖啡店", "家里", "楼下"],
    "thing": ["快递", "文件", "钥匙", "充电器", "雨伞", "照片", "报告", "电影票", "外卖", "作业"],
    "feel": ["开心", "累", "困", "饿", "无聊", "紧张", "激动", "难过", "忙"],
}

ZH_TEMPLATES: list[str] = [
    "{time}一起去{act}吧",
    "我们{time}去吃{food}怎么样",
    "我已经到{place}了",
    "你的{thing}我帮你拿了",
    "今天好{feel}啊",
    "{time}我要{act}，晚点回你",
    "记得带{thing}",
    "刚才在{place}看到你了",
    "我在{place}门口等你",
    "好久没吃{food}了",
    "{thing}放在{place}了",
    "不好意思，我{time}要{act}",
    "那就这么定了，{time}见",
    "我快到{place}了，你先点{food}",
    "{time}的会议改到下午三点了",
    "我们明天见面聊吧",
    "路上小心，到了给我发消息",
    "谢谢你的{thing}",
    "这家{food}真的很好吃",
    "周末有空一起{act}吗",
    "我现在有点{feel}",
    "麻烦你帮我看一下{thing}",
    "哈哈哈笑死我了",
    "收到，马上处理",
    "没问题，交给我吧",
]

# (question shown in the last bubble, short replies a person would send)
ZH_QA: list[tuple[str, list[str]]] = [
    ("{time}有空吗？", ["有空", "有空啊", "没问题", "不好意思没空"]),
    ("你到哪了？", ["快到了", "马上到", "在路上了", "到{place}了"]),
    ("吃饭了吗？", ["吃了", "还没呢", "刚吃完"]),
    ("{time}一起去{act}吗？", ["好啊", "可以啊", "去", "下次吧"]),
    ("你喜欢吃{food}吗？", ["喜欢", "超喜欢", "还行吧"]),
    ("文件发你了，收到了吗？", ["收到了", "收到，谢谢", "还没收到"]),
    ("在吗？", ["在的", "在", "怎么了"]),
    ("明天几点见？", ["十点吧", "下午见", "你定吧"]),
    ("睡了吗？", ["还没", "准备睡了", "没呢"]),
    ("你今天怎么样？", ["挺好的", "还不错", "有点累"]),
    ("要不要帮你带{food}？", ["要", "好呀谢谢", "不用了"]),
    ("周末干嘛？", ["在家休息", "去{act}", "还没想好"]),
]

EN_QA: list[tuple[str, list[str]]] = [
    ("Are you free {when}?", ["Yes I'm free", "Sure, what's up?", "Sorry, I'm busy", "Yeah why?"]),
    ("Where are you?", ["On my way", "Almost there", "Just got home", "At work"]),
    ("What time should we meet?", ["How about 7?", "6:30 works", "Whenever you want"]),
    ("Did you get home ok?", ["Yes, just got home", "Yep all good", "Yes thanks!"]),
    ("Want to grab {meal} {when}?", ["Sure!", "I'd love to", "Can't {when}", "Sounds good"]),
    ("Can you call me?", ["Calling now", "Give me 5 min", "Can't talk right now"]),
    ("How was your day?", ["Pretty good", "Long day", "Great, you?"]),
    ("Did you see my email?", ["Not yet", "Yes, replying now", "Just saw it"]),
    ("Are you coming {when}?", ["Yes!", "Definitely", "Not sure yet", "Running late"]),
    ("Happy birthday!!", ["Thank you!!", "Thanks so much", "Aww thank you"]),
    ("Can you send me the file?", ["Sure, sending now", "Sent!", "Will do"]),
    ("Is {day} ok for you?", ["{day} works", "Yes perfect", "Can we do {day2}?"]),
]
EN_WHEN = ["tonight", "tomorrow", "this weekend", "later", "on Friday", "tomorrow night", "after work"]
EN_MEALS = ["lunch", "dinner", "coffee", "drinks", "brunch", "pizza"]
EN_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

OTP_TEMPLATES_EN = [
    "{code} is your {app} verification code. Don't share it.",
    "Your {app} code is {code}. It expires in 10 minutes.",
    "{app}: use {code} to verify your account.",
    "Your login code: {code}",
]
OTP_TEMPLATES_ZH = [
    "【{app}】验证码{code}，5分钟内有效，请勿泄露。",
    "您的验证码是{code}，请在10分钟内完成验证。",
    "【{app}】您正在登录，验证码：{code}",
]
APPS_EN = ["Chase", "Uber", "PayPal", "Amazon", "Google", "Venmo", "DoorDash", "Airbnb", "Lyft", "Instagram"]
APPS_ZH = ["支付宝", "淘宝", "美团", "京东", "微信", "滴滴出行", "拼多多", "饿了么", "12306", "招商银行"]

FIELD_LABELS = {
    "en": {"phone": "Phone number", "email": "Email", "password": "Password", "code": "Verification code",
           "amount": "Amount", "name": "Full name", "search": "Search", "url": "Search or type URL"},
    "zh": {"phone": "手机号", "email": "邮箱", "password": "密码", "code": "验证码",
           "amount": "金额", "name": "姓名", "search": "搜索", "url": "搜索或输入网址"},
}
EN_EMAIL_OPENERS = ["Hi {first},", "Hello {first},", "Dear {first},", "Hey {first},"]
EN_EMAIL_BODIES = [
    "Thanks for getting back to me so quickly.",
    "I wanted to follow up on our meeting yesterday.",
    "Please find the report attached.",
    "Could you send me the latest version of the slides?",
    "Let me know if you have any questions.",
    "I'll be out of the office until Monday.",
    "Can we move our call to next week?",
]
EN_SIGNOFFS = ["Best regards,", "Thanks,", "Cheers,", "Best,", "Kind regards,"]
EN_POSTS = [
    "Best weekend ever at the beach",
    "Finally tried the new pizza place downtown",
    "Happy birthday to my best friend",
    "Coffee first, then everything else",
    "Can't believe this view",
    "Game night with the crew",
    "New puppy just arrived",
    "Sunday morning hike done",
    "Missing summer already",
    "Movie night and popcorn",
]
NOTE_TITLES_EN = ["Groceries", "To do", "Trip ideas", "Meeting notes", "Gift list", "Books to read"]
NOTE_TITLES_ZH = ["购物清单", "待办事项", "旅行计划", "会议记录", "读书笔记"]
