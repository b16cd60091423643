"""What the demo workspace starts with: an ICP list, tag rules, synced tags and its
scoring model.

The simulator's companies are the target accounts; the rules turn what the
simulated followers do (menus, messages, QR scans, WeCom adds) into role,
seniority, industry, interest and source tags.
"""

import csv
import io
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from handlers.imports import run_import
from handlers.rule_config import DEFAULT_PROFILE_PATTERN
from handlers.tags import TagBook
from models import AccountImport, RuleKind, TagGroup, TagRule
from scoring.engine import save_model
from scoring.model import Fit, Model, MqaRule
from wechat.sandbox.simulator import COMPANIES

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
