"""What the demo workspace starts with: an ICP list, tag rules, synced tags and its
scoring model.

The simulator's companies are the target accounts; the rules turn what the
simulated followers do (menus, messages, QR scans, WeCom adds) into role,
seniority, industry, interest and source tags.
"""

import csv
import io
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from handlers.imports import run_import
from handlers.rule_config import DEFAULT_PROFILE_PATTERN
from handlers.tags import TagBook
from models import (
    AccountImport,
    Journey,
    JourneyStatus,
    JourneyVersion,
    Push,
    PushStatus,
    RuleKind,
    SavedSegment,
    TagGroup,
    TagRule,
    utcnow,
)
from outreach.segments import Segment, save_segment
from scoring.engine import save_model
from scoring.model import Fit, Model, MqaRule
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

# The OA's menus (Step 7): a default for everyone, and one conditional menu per industry
# (the tag a follower gets from their account's industry) whose own buttons tag an
# interest and answer the tap.
SOLUTION_BUTTONS = [
    {"type": "click", "name": "行业案例", "key": "CASES"},
    {"type": "click", "name": "价格方案", "key": "PRICING"},
    {"type": "click", "name": "预约演示", "key": "BOOK_DEMO"},
]
SOLUTIONS_MENU = {
    "name": "解决方案",
    "sub_button": [
        SOLUTION_BUTTONS[0],
        {"type": "view", "name": "产品白皮书", "url": "https://harpoon.example/whitepaper"},
        *SOLUTION_BUTTONS[1:],
    ],
}
ABOUT_MENU = {
    "name": "关于我们",
    "sub_button": [
        {"type": "view", "name": "公司介绍", "url": "https://harpoon.example/about"},
        {"type": "view", "name": "产品白皮书", "url": "https://harpoon.example/whitepaper"},
        {"type": "click", "name": "联系销售", "key": "CONTACT_SALES"},
    ],
}
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
        writer.writerow([name, industry, region, employees, acv, domain, owner_email])
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
                "kinds": ["wechat.menu_view"],
                "property": "url",
                "value": "whitepaper",
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
    # Role tags drive the conditional menus (Step 7): mirror them as OA user tags;
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
    run_import(session, account_import.id)


def demo_scoring_model() -> Model:
    """The shipped model, with the demo's ICP and an MQA rule the simulated buyers can
    meet without live streams (the shipped example rule needs 60 minutes of watching)."""
    return replace(
        Model(),
        fit=Fit(industries=("制造", "软件", "金融", "医药"), min_employees=1000),
        mqa_rules=(
            MqaRule(),
            MqaRule(
                name="采购委员会活跃",
                window_days=30,
                min_roles=3,
                senior_level="director",
                senior_count=1,
                senior_minutes=0,
                min_account_score=80,
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


def demo_menu_document(session: Session, workspace_id: int) -> dict:
    """The demo OA's menus as an outreach.menus document: each industry's menu keeps the
    "我是..." menu and the solution clicks the scoring rules count."""
    book = TagBook(session, workspace_id)
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
                    ABOUT_MENU,
                ],
            }
        )
    return {"default": [SOLUTIONS_MENU, SELF_ID_MENU, ABOUT_MENU], "conditional": conditional}


def demo_qr_codes(session: Session, workspace_id: int) -> list[dict]:
    """The simulator's channel QR scenes as permanent codes with tags and a welcome (its
    "search" channel has none: those people find the account by searching)."""
    book = TagBook(session, workspace_id)

    def tags(*names: tuple[str, str]) -> list[int]:
        return [book.get(session, group, name).id for group, name in names]

    codes = {
        "expo2026": {
            "name": "2026 工博会展台",
            "tag_ids": tags((TagGroup.SOURCE, "展会")),
            "welcome_reply": "欢迎来到 Harpoon 展台！回复“试用”申请试用，"
            "或点菜单“预约演示”请顾问现场讲解。",
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
            "welcome_reply": "《制造业 AI 落地白皮书》在这里：https://harpoon.example/whitepaper"
            " 读完想了解方案，回复“报价”即可。",
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


def seed_demo_outreach(session: Session, workspace_id: int, oa_channel_id: int, owner_id: int):
    """Once per workspace: the demo's segments and a scheduled push to the first."""
    if session.scalar(select(SavedSegment.id).where(SavedSegment.workspace_id == workspace_id)):
        return
    saved = [
        save_segment(session, workspace_id, name, description, segment.to_document(), owner_id)
        for name, description, segment in DEMO_SEGMENTS
    ]
    session.add(
        Push(
            workspace_id=workspace_id,
            channel_id=oa_channel_id,
            name="CIO 闭门会邀请",
            content={"type": "text", "text": DEMO_PUSH_TEXT},
            segment_id=saved[0].id,
            status=PushStatus.SCHEDULED,
            scheduled_at=utcnow() + timedelta(seconds=90),
            prefer_service_window=True,
            created_by=owner_id,
        )
    )
    session.commit()


def demo_journey(tag_ids: dict[str, int]) -> dict:
    """New followers: a welcome, then wait up to 10 minutes for 预约演示; whoever books is
    tagged and their owner told. Sales adding someone in WeCom enters mid-journey."""
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


def seed_demo_journey(session: Session, workspace_id: int, owner_id: int) -> None:
    """Once per workspace: the demo journey, live."""
    if session.scalar(select(Journey.id).where(Journey.workspace_id == workspace_id)):
        return
    book = TagBook(session, workspace_id)
    tag_ids = {
        name: book.get(session, TagGroup.BEHAVIOR, name).id for name in ("演示意向", "企微已加")
    }
    journey = Journey(
        workspace_id=workspace_id,
        name="新粉丝培育",
        description="欢迎语 → 等待预约演示 → 通知负责人；企微添加的客户中途进入",
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
            document=demo_journey(tag_ids),
            note="演示",
            created_by=owner_id,
        )
    )
    session.commit()
