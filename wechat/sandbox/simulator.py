"""Followers and customers who act over time, delivered as real callbacks.

A seeded population of B2B buyers (companies, industries, regions, titles in
Chinese and English) follows the OA through channel QR codes, taps the menu
the sandbox would show each of them, sends messages, and is added by sales
staff through 联系我 codes. Every action goes through the sandbox, which
delivers the signed, encrypted callback WeChat or WeCom would send.
Deterministic for a seed.
"""

import random
import threading
from dataclasses import dataclass, field

from wechat.sandbox import oa, wecom
from wechat.sandbox.core import Sandbox, Tenant

COMPANIES = [
    ("上海华信科技有限公司", "制造", "华东"),
    ("北京中科软件股份有限公司", "软件", "华北"),
    ("深圳前海金融服务有限公司", "金融", "华南"),
    ("杭州云栖数据有限公司", "互联网", "华东"),
    ("广州美颜医疗美容医院", "医美", "华南"),
    ("成都天府教育集团", "教育", "西南"),
    ("武汉光谷制药股份有限公司", "医药", "华中"),
    ("南京紫金银行", "金融", "华东"),
    ("苏州工业园区精密机械有限公司", "制造", "华东"),
    ("Siemens Ltd., China", "制造", "华北"),
    ("西安航天电子有限公司", "制造", "西北"),
    ("重庆长江物流有限公司", "物流", "西南"),
]
TITLES = [
    "CIO",
    "首席信息官",
    "信息中心主任",
    "IT部总经理",
    "科技处处长",
    "CTO",
    "Head of IT",
    "IT Manager",
    "采购经理",
    "采购总监",
    "财务总监",
    "CFO",
    "工程师",
    "高级工程师",
    "Software Engineer",
    "运维主管",
    "市场经理",
    "总经理",
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "敏", "静", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明"]
MESSAGES = [
    "报价多少？",
    "可以发一份产品资料吗",
    "申请试用",
    "有没有医美行业案例",
    "你好",
    "联系销售",
]
CHANNELS = ["expo2026", "webinar-cio", "whitepaper-ai", "search"]


@dataclass
class Person:
    openid: str
    unionid: str
    external_userid: str
    name: str
    company: str
    industry: str
    region: str
    title: str
    following: bool = False
    added_by: str = ""  # the staff member who added them in WeCom


@dataclass
class Simulator:
    sandbox: Sandbox
    oa_tenant: Tenant
    wecom_tenant: Tenant | None = None
    seed: int = 7
    population_size: int = 200
    staff: list[str] = field(default_factory=lambda: ["zhangsan", "lisi", "wangwu"])
    # 联系我 states (attribution) the staff hand out; the demo seeds matching contact ways.
    contact_states: list[str] = field(default_factory=lambda: ["expo2026-booth", "webinar"])
    # Channel QR code tickets by scene; without one a follow comes from search.
    tickets: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.random = random.Random(self.seed)
        self.people = [self._person(n) for n in range(self.population_size)]
        self.actions = 0

    def _person(self, n: int) -> Person:
        company, industry, region = self.random.choice(COMPANIES)
        name = self.random.choice(SURNAMES) + self.random.choice(GIVEN)
        return Person(
            openid=f"oSim{self.seed:03d}{n:06d}",
            unionid=f"uSim{self.seed:03d}{n:06d}" if self.random.random() < 0.7 else "",
            external_userid=f"wmSim{self.seed:03d}{n:06d}",
            name=name,
            company=company,
            industry=industry,
            region=region,
            title=self.random.choice(TITLES),
        )

    def step(self) -> str:
        """One action by one person; returns what happened, for the demo's log."""
        self.actions += 1
        person = self.random.choice(self.people)
        if not person.following:
            return self._follow(person)
        roll = self.random.random()
        if roll < 0.45:
            return self._tap_menu(person)
        if roll < 0.55:
            oa.send_text(self.sandbox, self.oa_tenant, person.openid, self.random.choice(MESSAGES))
            return f"{person.name} sent a message"
        if roll < 0.65:
            intro = f"我是{person.title}，来自{person.company}"
            oa.send_text(self.sandbox, self.oa_tenant, person.openid, intro)
            return f"{person.name} introduced themselves: {intro}"
        if roll < 0.80 and self.wecom_tenant and not person.added_by:
            return self._added_by_sales(person)
        if roll < 0.90 and self.tickets:
            scene = self.random.choice(sorted(self.tickets))
            oa.scan(self.sandbox, self.oa_tenant, person.openid, self.tickets[scene])
            return f"{person.name} scanned {scene}"
        if roll < 0.97:
            oa.share_location(self.sandbox, self.oa_tenant, person.openid, 31.23, 121.47)
            return f"{person.name} shared a location"
        oa.unfollow(self.sandbox, self.oa_tenant, person.openid)
        person.following = False
        return f"{person.name} unfollowed"

    def _follow(self, person: Person) -> str:
        scene = self.random.choice(CHANNELS)
        ticket = self.tickets.get(scene)
        oa.follow(
            self.sandbox, self.oa_tenant, person.openid, unionid=person.unionid, ticket=ticket
        )
        person.following = True
        via = f"QR {scene}" if ticket else "search"
        return f"{person.name} ({person.title}, {person.company}) followed via {via}"

    def _tap_menu(self, person: Person) -> str:
        with self.sandbox.lock:
            buttons = oa.menu_for(self.oa_tenant, person.openid) or []
        leaves = [sub for b in buttons for sub in (b.get("sub_button") or [b])]
        choices = [b for b in leaves if b.get("type") in ("click", "view")]
        if not choices:
            oa.send_text(self.sandbox, self.oa_tenant, person.openid, "菜单在哪里？")
            return f"{person.name} found no menu and asked"
        button = self.random.choice(choices)
        if button["type"] == "click":
            oa.click(self.sandbox, self.oa_tenant, person.openid, button["key"])
        else:
            oa.view(self.sandbox, self.oa_tenant, person.openid, button["url"])
        return f"{person.name} tapped {button['name']}"

    def _added_by_sales(self, person: Person) -> str:
        staff = self.random.choice(self.staff)
        state = self.random.choice(self.contact_states)
        corp_name = "" if person.company.startswith("Siemens") else person.company
        wecom.add_external_contact(
            self.sandbox,
            self.wecom_tenant,
            userid=staff,
            external_userid=person.external_userid,
            name=person.name,
            corp_name=corp_name,
            position=person.title,
            unionid=person.unionid,
            state=state,
        )
        person.added_by = staff
        return f"{staff} added {person.name} in WeCom ({state})"

    def run(self, stop: threading.Event, actions_per_second: float, on_action=None) -> None:
        """Act until `stop` is set, at about the given rate."""
        interval = 1.0 / actions_per_second
        while not stop.wait(interval):
            description = self.step()
            if on_action:
                on_action(description)
