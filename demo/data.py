"""What the demo workspace starts with: an ICP list, tag rules, synced tags, its
scoring model, and a content library with tracked links and a form.

The simulator's companies are the target accounts; the rules turn what the
simulated followers do (menus, messages, QR scans, WeCom adds, pages read) into
role, seniority, industry, interest and source tags.
"""

import csv
import io
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.imports import run_import
from crm.rule_config import DEFAULT_PROFILE_PATTERN
from crm.tags import TagBook
from models import (
    AccountImport,
    Content,
    ContentKind,
    EmailTemplate,
    Journey,
    JourneyStatus,
    JourneyVersion,
    LinkMedium,
    Push,
    PushStatus,
    RuleKind,
    SavedSegment,
    TagGroup,
    TagRule,
    TrackedLink,
    utcnow,
)
from outreach.content import create_link, link_path
from outreach.library.editing import (
    FormChoices,
    load_content,
    load_form_definition,
    save_content,
    save_form,
)
from outreach.segments import Segment, save_segment
from sales.routing import rules_of, save_rule
from scoring.engine import refresh_accounts, save_model
from scoring.model import Fit, Model, MqaRule, Scale
from wechat.sandbox.simulator import CHANNELS, COMPANIES

# Size, ACV and domain of the larger targets; the simulator gives name, industry and region.
ICP_EXTRA = {
    "上海华信科技有限公司": (1200, 800000, "huaxin.example"),
    "北京中科软件股份有限公司": (3500, 1500000, "zksoft.example"),
    "深圳前海金融服务有限公司": (800, 600000, "qhfin.example"),
    "南京紫金银行": (5000, 2000000, "zijinbank.example"),
    "Siemens Ltd., China": (30000, 3000000, "siemens.example"),
    "武汉光谷制药股份有限公司": (2000, 900000, "ggpharma.example"),
}
# The "我是..." menu: a follower states their role.
SELF_ID_BUTTONS = [
    ("IT负责人", "IAM_IT_HEAD", "cio"),
    ("技术负责人", "IAM_CTO", "cto"),
    ("采购", "IAM_PROCUREMENT", "procurement"),
    ("财务", "IAM_FINANCE", "finance"),
    ("工程师", "IAM_ENGINEER", "engineer"),
]
SELF_ID_MENU = {
    "name": "我是...",
    "sub_button": [{"type": "click", "name": name, "key": key} for name, key, _ in SELF_ID_BUTTONS],
}
PROFILE_REPLY = "谢谢！已记下您的职位和公司，稍后为您推荐同行业的案例。"

# The OA's menus: a default for everyone, and one conditional menu per industry
# (the tag a follower gets from their account's industry) whose own buttons tag an
# interest and answer the tap.
SOLUTION_BUTTONS = [
    {"type": "click", "name": "行业案例", "key": "CASES"},
    {"type": "click", "name": "价格方案", "key": "PRICING"},
    {"type": "click", "name": "预约演示", "key": "BOOK_DEMO"},
]
# industry -> (its menu's name, [(button, key, interest tag, reply)])
INDUSTRY_MENUS = {
    "医美": (
        "医美专区",
        [
            ("我要整形", "MED_CONSULT", "整形咨询", "已为您预约医美顾问，稍后电话联系您。"),
            ("医美快讯", "MED_NEWS", "医美资讯", "本周医美快讯：合规获客与私域运营，详见推送。"),
        ],
    ),
    "教育": (
        "教育专区",
        [
            ("我要报名", "EDU_SIGNUP", "报名意向", "报名信息已收到，课程顾问会尽快联系您。"),
            ("教育资讯", "EDU_NEWS", "教育资讯", "本周教育资讯：招生季的线索培育，详见推送。"),
        ],
    ),
    "制造": (
        "智能制造",
        [
            ("智能工厂方案", "MFG_FACTORY", "智能工厂", "智能工厂方案已发送，顾问会约您参观产线。"),
            ("设备联网案例", "MFG_IOT", "工业互联网", "设备联网案例集已发送，请查收。"),
        ],
    ),
    "金融": (
        "金融专区",
        [
            ("合规风控方案", "FIN_COMPLIANCE", "合规风控", "合规风控方案已发送，顾问稍后联系您。"),
            ("金融资讯", "FIN_NEWS", "金融资讯", "本周金融科技资讯已发送，请查收。"),
        ],
    ),
}


def icp_csv(owner_email: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["公司名称", "行业", "地区", "员工数", "ACV", "域名", "负责人"])
    for name, industry, region in COMPANIES:
        employees, acv, domain = ICP_EXTRA.get(name, (500, 300000, ""))
        # The larger targets are 张三's (`owner_email`); routing gives the others an owner when they
        # heat up.
        owner = owner_email if name in ICP_EXTRA else ""
        writer.writerow([name, industry, region, employees, acv, domain, owner])
    return out.getvalue().encode("utf-8-sig")


def seed_demo_tagging(session: Session, workspace_id: int, owner_id: int, owner_email: str):
    """Once per workspace: the ICP import, the rules, and which tags mirror to WeChat."""
    if session.scalar(select(TagRule.id).where(TagRule.workspace_id == workspace_id).limit(1)):
        return
    book = TagBook(session, workspace_id)
    rules = [
        (RuleKind.PROFILE, "自我介绍：我是…来自…", None, {"pattern": DEFAULT_PROFILE_PATTERN}),
        (
            RuleKind.KEYWORD,
            "询价",
            (TagGroup.INTEREST, "价格"),
            {"match": "regex", "pattern": "报价|价格|多少钱"},
        ),
        (
            RuleKind.KEYWORD,
            "试用",
            (TagGroup.INTEREST, "试用"),
            {"match": "contains", "pattern": "试用"},
        ),
        (
            RuleKind.KEYWORD,
            "医美案例",
            (TagGroup.INTEREST, "医美"),
            {"match": "contains", "pattern": "医美"},
        ),
        *[
            (RuleKind.MENU, f"菜单：我是{name}", (TagGroup.ROLE, role), {"key": key})
            for name, key, role in SELF_ID_BUTTONS
        ],
        (
            RuleKind.BEHAVIOR,
            "两次看行业案例",
            (TagGroup.INTEREST, "行业案例"),
            _clicks("CASES", 2),
        ),
        (RuleKind.BEHAVIOR, "两次看价格方案", (TagGroup.INTEREST, "价格"), _clicks("PRICING", 2)),
        (
            RuleKind.BEHAVIOR,
            "读白皮书",
            (TagGroup.INTEREST, "白皮书"),
            {
                "kinds": ["content.view"],
                "property": "title",
                "value": "白皮书",
                "match": "contains",
                "min_count": 1,
                "days": 30,
            },
        ),
        (
            RuleKind.BEHAVIOR,
            "30 天内 3 条消息",
            (TagGroup.BEHAVIOR, "活跃互动"),
            {"kinds": ["wechat.message"], "min_count": 3, "days": 30},
        ),
        (RuleKind.INACTIVITY, "60 天无互动", (TagGroup.LIFECYCLE, "沉睡"), {"days": 60}),
    ]
    replies = {
        "询价": "报价方案已发送给您的专属顾问，也可点击菜单“预约演示”。",
        "试用": "试用申请已收到，顾问会在一个工作日内联系您。",
    }
    for position, (kind, name, tag, config) in enumerate(rules):
        tag_id = book.get(session, *tag).id if tag else None
        reply = PROFILE_REPLY if kind == RuleKind.PROFILE else replies.get(name)
        session.add(
            TagRule(
                workspace_id=workspace_id,
                kind=kind,
                name=name,
                tag_id=tag_id,
                config=config,
                reply=reply,
                position=position,
            )
        )
    # Role tags drive the conditional menus: mirror them as OA user tags;
    # interest in pricing is what sales want to see in WeCom.
    for _, _, role in SELF_ID_BUTTONS:
        book.get(session, TagGroup.ROLE, role).sync_wechat = True
    book.get(session, TagGroup.INTEREST, "价格").sync_wecom = True
    account_import = AccountImport(
        workspace_id=workspace_id,
        user_id=owner_id,
        filename="demo-icp.csv",
        content=icp_csv(owner_email),
    )
    session.add(account_import)
    save_model(session, workspace_id, demo_scoring_model(), "Demo model", owner_id)
    session.commit()
    run_import(session, account_import.id, refresh_accounts=refresh_accounts)


def demo_scoring_model() -> Model:
    """The shipped model, with the demo's ICP and an MQA rule the simulated buyers can
    meet without live streams (the shipped example rule needs 60 minutes of watching).
    The simulation packs weeks of a buying committee into minutes, so its account scores
    read on a wider scale, a tap on "book a demo" and a form count once a day, and the
    committee rule asks for four roles, two VPs or above and 85 of 100: a few accounts
    become MQAs within a run, not every one."""
    once_a_day = {"menu_demo", "form_submit"}
    return replace(
        Model(),
        rules=tuple(
            replace(rule, per_day=1) if rule.key in once_a_day else rule for rule in Model().rules
        ),
        fit=Fit(industries=("制造", "软件", "金融", "医药"), min_employees=1000),
        scale=Scale(points=1000),
        mqa_rules=(
            MqaRule(),
            MqaRule(
                name="采购委员会活跃",
                window_days=30,
                min_roles=4,
                senior_level="vp",
                senior_count=2,
                senior_minutes=0,
                min_account_score=85,
            ),
        ),
    )


def _clicks(key: str, count: int) -> dict:
    return {
        "kinds": ["wechat.menu_click"],
        "property": "key",
        "value": key,
        "match": "equals",
        "min_count": count,
        "days": 30,
    }


def demo_menu_document(session: Session, workspace_id: int, links: dict[str, str]) -> dict:
    """The demo OA's menus as an outreach.menus document: each industry's menu keeps the
    "我是..." menu and the solution clicks the scoring rules count; `view` buttons open the
    tracked links of the content library (`demo_links`), so a tap names its reader."""
    book = TagBook(session, workspace_id)

    def views(*names: str) -> list[dict]:
        return [
            {"type": "view", "name": name, "url": links[MENU_LINKS[name]]}
            for name in names
            if MENU_LINKS[name] in links
        ]

    solutions = {
        "name": "解决方案",
        "sub_button": [
            SOLUTION_BUTTONS[0],
            *views("产品白皮书"),
            SOLUTION_BUTTONS[1],
            *views("价格详情"),
            SOLUTION_BUTTONS[2],
        ],
    }
    about = {
        "name": "关于我们",
        "sub_button": [
            *views("产品白皮书", "客户案例", "ABM 实战"),
            {"type": "click", "name": "联系销售", "key": "CONTACT_SALES"},
        ],
    }
    conditional = []
    for industry, (menu_name, buttons) in INDUSTRY_MENUS.items():
        own = [
            {
                "type": "click",
                "name": name,
                "key": key,
                "tag_id": book.get(session, TagGroup.INTEREST, interest).id,
                "reply": reply,
            }
            for name, key, interest, reply in buttons
        ]
        conditional.append(
            {
                "tag_id": book.get(session, TagGroup.INDUSTRY, industry).id,
                "buttons": [
                    {"name": menu_name, "sub_button": own + SOLUTION_BUTTONS},
                    SELF_ID_MENU,
                    about,
                ],
            }
        )
    return {"default": [solutions, SELF_ID_MENU, about], "conditional": conditional}


def demo_qr_codes(session: Session, workspace_id: int, links: dict[str, str]) -> list[dict]:
    """The simulator's channel QR scenes as permanent codes with tags and a welcome (its
    "search" channel has none: those people find the account by searching). The expo's
    welcome carries the registration form's link, the white paper code's the paper's."""
    book = TagBook(session, workspace_id)

    def tags(*names: tuple[str, str]) -> list[int]:
        return [book.get(session, group, name).id for group, name in names]

    expo_form = f"登记领取《{WHITEPAPER}》：{links['expo_form']}" if "expo_form" in links else ""
    paper = links.get("qr_whitepaper", "")
    codes = {
        "expo2026": {
            "name": "2026 工博会展台",
            "tag_ids": tags((TagGroup.SOURCE, "展会")),
            "welcome_reply": "欢迎来到 Harpoon 展台！"
            + (expo_form + "。" if expo_form else "")
            + "回复“试用”申请试用，或点菜单“预约演示”请顾问现场讲解。",
        },
        "webinar-cio": {
            "name": "CIO 数字化转型直播",
            "tag_ids": tags((TagGroup.SOURCE, "直播研讨会"), (TagGroup.INTEREST, "数字化转型")),
            "welcome_reply": "感谢报名 CIO 数字化转型直播！开播前会提醒您，"
            "回放和讲义也会发到这里。",
        },
        "whitepaper-ai": {
            "name": "AI 白皮书下载",
            "tag_ids": tags((TagGroup.SOURCE, "白皮书"), (TagGroup.INTEREST, "AI")),
            "welcome_reply": f"《{WHITEPAPER}》在这里"
            + (f"：{paper}" if paper else "，点菜单“关于我们 → 产品白皮书”阅读")
            + "。读完想了解方案，回复“报价”即可。",
        },
    }
    return [{"scene": scene, **codes[scene]} for scene in CHANNELS if scene in codes]


def demo_contact_ways(session: Session, workspace_id: int) -> list[dict]:
    """The simulator's 联系我 states as codes with source tags and a welcome."""
    book = TagBook(session, workspace_id)
    booth = book.get(session, TagGroup.SOURCE, "展会展台").id
    webinar = book.get(session, TagGroup.SOURCE, "直播研讨会").id
    return [
        {
            "name": "2026 展会展台",
            "state": "expo2026-booth",
            "staff_userids": ["zhangsan", "lisi", "wangwu"],
            "skip_verify": True,
            "tag_ids": [booth],
            "welcome_text": "{name}您好！我是{staff}，感谢您在展台扫码。"
            "为您准备了{last_read}，有任何问题随时找我。",
        },
        {
            "name": "CIO 直播研讨会",
            "state": "webinar",
            "staff_userids": ["zhangsan", "lisi", "wangwu"],
            "skip_verify": True,
            "tag_ids": [webinar],
            "welcome_text": "{name}您好，我是{staff}。直播回放和讲义稍后发您，"
            "也欢迎预约一对一演示。",
        },
    ]


# The conference's customer group, owned by 张三, and the 群活码 at the venue that fills it
# (its chat_id fixed: the sandbox starts empty on every run and makes it again).
DEMO_GROUP = {
    "chat_id": "wrDemoSummit2026Group0001",
    "name": "2026 数字化峰会交流群",
    "owner": "zhangsan",
    "notice": "峰会议程、直播回放和讲义都在群公告，欢迎交流。",
}


def demo_join_way(session: Session, workspace_id: int) -> dict:
    """The summit's 群活码: joins tagged with their source, new groups when it fills up."""
    summit = TagBook(session, workspace_id).get(session, TagGroup.SOURCE, "2026 数字化峰会").id
    return {
        "name": "2026 数字化峰会 · 会场",
        "state": "summit2026-venue",
        "chat_ids": [DEMO_GROUP["chat_id"]],
        "auto_create_room": True,
        "room_base_name": "2026 数字化峰会交流群",
        "room_base_id": 2,
        "tag_ids": [summit],
    }


DEMO_GROUP_WELCOME = {
    "name": "峰会交流群欢迎语",
    "text": "欢迎 %NICKNAME% 加入 2026 数字化峰会交流群！议程和讲义在群公告，"
    "会后直播回放也会发在群里。",
    "link_title": "2026 数字化峰会议程",
    "link_url": "https://example.com/summit2026/agenda",
    "link_desc": "主论坛、制造与金融分论坛、闭门会",
}


# The content library: hosted pages (read with the beacon) and one article
# elsewhere, each reached through tracked links placed in a medium, so a view names its
# reader and what the page is about scores.
WHITEPAPER = "2026 制造业数字化转型白皮书（摘要）"
CASE_STUDY = "AI 客服落地案例：南京紫金银行"
PRICING = "Harpoon 价格方案"
ABM_ARTICLE = "ABM 实战：B2B 营销如何找准采购委员会"
DEMO_CONTENT = [
    {
        "kind": ContentKind.DOWNLOAD.value,
        "title": WHITEPAPER,
        "summary": "120 家制造企业的数字化转型调研：投入、路径与回报。",
        "topics": "制造、数字化",
        "products": "harpoon",
        "body": "2026 年，制造业的数字化转型从“建系统”走向“用数据”。我们调研了 120 家"
        "年营收 10 亿元以上的制造企业，七成已完成 ERP 与 MES 的基础建设，"
        "但只有两成能把设备、订单和客户数据连起来做决策。\n\n"
        "投入最多的三个方向是：设备联网与预测性维护、供应链协同、以及面向经销商和终端客户的"
        "数字化营销。其中营销数字化的回报周期最短，平均 9 个月收回投入。\n\n"
        "转型成功的企业有三个共同点：一把手亲自牵头、IT 与业务共用一套指标、"
        "先在一条产线或一个区域做出样板再推广。\n\n"
        "完整版白皮书附 12 个行业案例和一份自评清单，可在展台或公众号登记领取。",
    },
    {
        "kind": ContentKind.PAGE.value,
        "title": CASE_STUDY,
        "summary": "智能客服上线半年，人工坐席压力下降四成。",
        "topics": "金融、ai",
        "products": "harpoon",
        "body": "南京紫金银行的零售客户超过 600 万，过去每逢理财产品发售，"
        "客服热线的排队时间都会超过 10 分钟。\n\n"
        "项目组先用三个月梳理了 1,200 个高频问题，再以大模型加知识库的方式上线智能客服，"
        "所有回答都可追溯到行内制度原文，满足合规审查。\n\n"
        "上线半年后，七成咨询由智能客服直接解决，人工坐席的压力下降四成，"
        "客户满意度从 86% 提升到 93%。\n\n"
        "下一步，银行计划把同一套知识库开放给客户经理，在企业微信里为对公客户提供服务。",
    },
    {
        "kind": ContentKind.PAGE.value,
        "title": PRICING,
        "summary": "按席位与联系人规模计费，私有化部署另议。",
        "topics": "pricing",
        "products": "harpoon",
        "body": "标准版：每年 6.8 万元起，含 5 个席位、1 个服务号和 1 个企业微信，"
        "适合刚开始做私域运营的团队。\n\n"
        "专业版：每年 19.8 万元起，含 20 个席位、账户评分、客户旅程与 API，"
        "适合以目标客户（ABM）为核心的 B2B 营销团队。\n\n"
        "企业版：私有化部署，按联系人规模报价，提供专属顾问与 SLA 保障。\n\n"
        "所有版本均可免费试用 30 天，回复“试用”即可申请。",
    },
    {
        "kind": ContentKind.ARTICLE.value,
        "title": ABM_ARTICLE,
        "summary": "从一个人到一个采购委员会：B2B 营销的目标变了。",
        "topics": "abm",
        "url": "https://example.com/blog/abm-buying-committee",
    },
]
DEMO_FORM = "领取白皮书 / 展会报名"
DEMO_FORM_TAGS = [(TagGroup.SOURCE, "展会"), (TagGroup.INTEREST, "白皮书")]
# Where each content item's tracked links are placed: (key, title, medium, label).
DEMO_LINKS = [
    ("menu_whitepaper", WHITEPAPER, LinkMedium.MENU, "菜单：产品白皮书"),
    ("menu_case", CASE_STUDY, LinkMedium.MENU, "菜单：客户案例"),
    ("menu_pricing", PRICING, LinkMedium.MENU, "菜单：价格详情"),
    ("menu_abm", ABM_ARTICLE, LinkMedium.MENU, "菜单：ABM 实战"),
    ("push_case", CASE_STUDY, LinkMedium.PUSH, "推送：CIO 闭门会邀请"),
    ("article_pricing", PRICING, LinkMedium.ARTICLE, "文章：选型指南（阅读原文）"),
    ("article_abm", ABM_ARTICLE, LinkMedium.ARTICLE, "文章：ABM 实战（转载）"),
    ("qr_whitepaper", WHITEPAPER, LinkMedium.QR, "二维码：AI 白皮书欢迎语"),
    ("expo_form", DEMO_FORM, LinkMedium.QR, "二维码：展会欢迎语"),
]
# A menu button's name -> the link it opens.
MENU_LINKS = {
    "产品白皮书": "menu_whitepaper",
    "客户案例": "menu_case",
    "价格详情": "menu_pricing",
    "ABM 实战": "menu_abm",
}
# The links the simulated people come across in articles (a 阅读原文, a repost).
ARTICLE_LINKS = ("article_pricing", "article_abm")


def seed_demo_content(
    session: Session, workspace_id: int, oa_channel_id: int, owner_id: int | None
):
    """Once per workspace: the content library, the expo's registration form handing out
    the white paper, and their tracked links on the OA, made through the content library's
    own schemas and functions."""
    if session.scalar(select(Content.id).where(Content.workspace_id == workspace_id).limit(1)):
        return
    book = TagBook(session, workspace_id)
    contents = {}
    for spec in DEMO_CONTENT:
        content = save_content(session, workspace_id, load_content(spec), user_id=owner_id)
        contents[content.title] = content
    tags = [book.get(session, *tag) for tag in DEMO_FORM_TAGS]
    definition = load_form_definition(
        {
            "title": DEMO_FORM,
            "intro": "感谢莅临 Harpoon 展台！留下联系方式，白皮书完整版会发到您的微信。",
            "fields": {
                "name": "required",
                "company": "required",
                "title": "required",
                "phone": "required",
                "email": "optional",
            },
            "consent_text": "我同意 Harpoon 就本次展会与我联系，并发送产品资讯。",
            "thank_you": "登记成功！白皮书稍后发到您的微信。",
            "tag_ids": [tag.id for tag in tags],
            "download_content_id": contents[WHITEPAPER].id,
            "follow_up": {
                "wechat": True,
                "email": True,
                "message": "感谢莅临 Harpoon 展台，白皮书请查收：",
            },
        },
        FormChoices(
            tag_ids=frozenset(tag.id for tag in tags),
            content_ids=frozenset(c.id for c in contents.values()),
        ),
    )
    form = save_form(session, workspace_id, definition, user_id=owner_id)
    for _, title, medium, label in DEMO_LINKS:
        target = {"form_id": form.id} if title == DEMO_FORM else {"content_id": contents[title].id}
        create_link(
            session,
            workspace_id,
            **target,
            channel_id=oa_channel_id,
            medium=medium,
            label=label,
            created_by=owner_id,
        )
    session.commit()


def demo_links(session: Session, workspace_id: int, public_base: str) -> dict[str, str]:
    """The public URLs of the demo's tracked links by key (DEMO_LINKS), for the menus, the
    push, the QR welcomes and the simulator; empty for a workspace without them."""
    by_label = {
        link.label: link
        for link in session.scalars(
            select(TrackedLink).where(
                TrackedLink.workspace_id == workspace_id, TrackedLink.archived_at.is_(None)
            )
        )
    }
    return {
        key: f"{public_base}{link_path(by_label[label])}"
        for key, _, _, label in DEMO_LINKS
        if label in by_label
    }


# Saved segments, and a push to one of them that goes out a minute and a half after the
# demo starts, once simulated followers have arrived (the cron job sends due pushes).
DEMO_SEGMENTS = [
    (
        "华东 IT 决策者",
        "华东地区目标客户的 CIO / CTO，近 30 天活跃",
        Segment(roles=("cio", "cto"), regions=("华东",), active_within_days=30),
    ),
    ("医美行业", "医美行业客户的全部联系人", Segment(industries=("医美",))),
]
DEMO_PUSH_TEXT = "华东区 CIO 闭门会：本周五下午两点，聊聊数据平台选型。回复「报名」即可预留席位。"


def seed_demo_outreach(
    session: Session, workspace_id: int, oa_channel_id: int, owner_id: int, links: dict[str, str]
):
    """Once per workspace: the demo's segments and a scheduled push to the first, which
    carries the case study's tracked link (medium push)."""
    if session.scalar(select(SavedSegment.id).where(SavedSegment.workspace_id == workspace_id)):
        return
    text = DEMO_PUSH_TEXT
    if "push_case" in links:
        text += f"会前可先读《{CASE_STUDY}》：{links['push_case']}"
    saved = [
        save_segment(session, workspace_id, name, description, segment.to_document(), owner_id)
        for name, description, segment in DEMO_SEGMENTS
    ]
    session.add(
        Push(
            workspace_id=workspace_id,
            channel_id=oa_channel_id,
            name="CIO 闭门会邀请",
            content={"type": "text", "text": text},
            segment_id=saved[0].id,
            status=PushStatus.SCHEDULED,
            scheduled_at=utcnow() + timedelta(seconds=90),
            prefer_service_window=True,
            created_by=owner_id,
        )
    )
    session.commit()


def demo_journey(tag_ids: dict[str, int], email_template_id: int) -> dict:
    """New followers: a welcome, then wait up to 10 minutes for 预约演示; whoever books is
    tagged, emailed a confirmation (when they gave an address on a form) and their owner
    told. Sales adding someone in WeCom enters mid-journey."""
    return {
        "scope": "contact",
        "reentry": "once",
        "nodes": [
            {
                "id": "start",
                "type": "entry",
                "trigger": {"kind": "interaction", "event": {"kind": "wechat.follow"}},
                "next": "welcome",
            },
            {
                "id": "welcome",
                "type": "action",
                "action": {
                    "kind": "cs_message",
                    "text": "欢迎关注！点菜单「解决方案 → 预约演示」，顾问一对一为您讲解。",
                },
                "next": "wait_demo",
            },
            {
                "id": "wait_demo",
                "type": "wait",
                "wait": {
                    "event": {"kind": "wechat.menu_click", "where": {"key": "BOOK_DEMO"}},
                    "timeout_minutes": 10,
                },
                "next": "hot",
                "timeout_next": "done",
            },
            {
                "id": "hot",
                "type": "action",
                "action": {"kind": "add_tag", "tag_id": tag_ids["演示意向"]},
                "next": "confirm_by_email",
            },
            {
                "id": "confirm_by_email",
                "type": "action",
                "action": {"kind": "send_email", "email_template_id": email_template_id},
                "next": "tell_owner",
            },
            {
                "id": "tell_owner",
                "type": "action",
                "action": {"kind": "notify_owner", "text": "预约了演示，请尽快联系"},
                "next": "done",
            },
            {
                "id": "added_in_wecom",
                "type": "action",
                "trigger": {"kind": "interaction", "event": {"kind": "wecom.contact_added"}},
                "action": {"kind": "add_tag", "tag_id": tag_ids["企微已加"]},
                "next": "done",
            },
            {"id": "done", "type": "exit"},
        ],
    }


def seed_demo_routing(session: Session, workspace_id: int, user_ids: list[int]) -> None:
    """Once per workspace: unowned accounts that reach MQA or surge, or whose people
    appear, go round-robin to the demo's salespeople (the first-touch SLA's defaults)."""
    if rules_of(session, workspace_id):
        return
    save_rule(
        session,
        workspace_id,
        {
            "name": "目标客户轮询",
            "enabled": True,
            "regions": [],
            "industries": [],
            "tiers": [],
            "user_ids": user_ids,
            "method": "round_robin",
            "capacity": 20,
        },
    )


DEMO_EMAIL_BODY = """<p>{{ name or '您好' }}：</p>
<p>感谢您预约鱼叉 SCRM 的产品演示。{{ owner or '我们的顾问' }}会在一个工作日内与您联系，
确认时间并为{{ company or '贵公司' }}准备一对一的讲解。</p>
<p>演示前可以先看看：<a href="https://harpoon.example/cases">制造业客户案例</a></p>
<p>—— 鱼叉营销团队</p>"""


def seed_demo_journey(session: Session, workspace_id: int, owner_id: int) -> None:
    """Once per workspace: the demo journey, live."""
    if session.scalar(select(Journey.id).where(Journey.workspace_id == workspace_id)):
        return
    book = TagBook(session, workspace_id)
    tag_ids = {
        name: book.get(session, TagGroup.BEHAVIOR, name).id for name in ("演示意向", "企微已加")
    }
    template = EmailTemplate(
        workspace_id=workspace_id,
        name="预约演示确认",
        subject="{{ name or '您好' }}，您的产品演示已预约",
        body_html=DEMO_EMAIL_BODY,
        created_by=owner_id,
    )
    session.add(template)
    session.flush()
    journey = Journey(
        workspace_id=workspace_id,
        name="新粉丝培育",
        description="欢迎语 → 等待预约演示 → 邮件确认、通知负责人；企微添加的客户中途进入",
        status=JourneyStatus.LIVE,
        live_version=1,
        created_by=owner_id,
    )
    session.add(journey)
    session.flush()
    session.add(
        JourneyVersion(
            journey_id=journey.id,
            version=1,
            document=demo_journey(tag_ids, template.id),
            note="演示",
            created_by=owner_id,
        )
    )
    session.commit()
