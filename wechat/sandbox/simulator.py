"""Followers and customers who act over time, delivered as real callbacks.

A seeded population of B2B buyers (companies, industries, regions, titles in
Chinese and English) follows the OA through channel QR codes, taps the menu
the sandbox would show each of them, sends messages, and is added by sales
staff through 联系我 codes; customers scan a 群活码 and join the customer group it fills.
Every action goes through the sandbox, which
delivers the signed, encrypted callback WeChat or WeCom would send.

Given Harpoon's public address, people also read: they open the pages under it
(tracked links in menus, articles, messages and QR welcomes) in WeChat's browser,
which goes through the sandbox's silent OAuth, stay on a hosted page for a while
before its beacon reports the reading (a pending action, not a sleep), sometimes
like or share it (a colleague opens the shared link later), and fill the form a
welcome reply links to. Pages elsewhere are never fetched. A refused or failed
request is told in the action's description; it never stops the simulation.

Deterministic for a seed; with reading, the timing of pending actions follows the
clock and the pages follow what Harpoon answers.
"""

import heapq
import html
import itertools
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import requests

from wechat.sandbox import oa, wecom, wecom_group_marketing, wecom_groups
from wechat.sandbox.core import ApiError, Sandbox, Tenant

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

# WeChat's in-app browser, as Harpoon's pages see it.
WECHAT_BROWSER = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50(0x1800322f) NetType/WIFI"
)
AUTHORIZE_PATH = "/connect/oauth2/authorize"
HTTP_TIMEOUT = 10
MAX_REDIRECTS = 5
LIKE_CHANCE = 0.3
SHARE_CHANCE = 0.1
# A colleague opens a shared page, and a welcome's link is tapped, this many seconds later.
SHARED_OPEN_SECONDS = (3, 20)
WELCOME_TAP_SECONDS = (3, 12)
# After a form, the follower looks at their chat for the download this many seconds later.
DOWNLOAD_LOOK_SECONDS = (10, 25)
# What a hosted page shows (app/templates/public/page.html): the reading beacon's view
# token, the page's share link, a form's action and its rendering's token.
VIEW_TOKEN = re.compile(r'data-view="([^"]*)"')
SHARE_URL = re.compile(r'<p class="share-url" id="share-url">([^<]*)</p>')
FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')
FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')
HEADING = re.compile(r"<h1>([^<]*)</h1>")
URL = re.compile(r"https?://[^\s，。、；！？“”（）()<>]+")


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
    phone: str = ""
    email: str = ""  # some give one on forms
    following: bool = False
    added_by: str = ""  # the staff member who added them in WeCom
    in_group: bool = False  # joined a customer group through a 群活码
    opened: set[str] = field(default_factory=set)  # links from their chat they opened
    filled: set[str] = field(default_factory=set)  # the forms (their addresses) they sent


@dataclass
class Page:
    """A page Harpoon hosts, as the browser got it."""

    url: str
    title: str
    view_token: str
    share_url: str = ""
    form_action: str = ""
    form_token: str = ""


@dataclass(order=True)
class Pending:
    """An action that happens later: a reader leaving a page, a colleague opening a share."""

    due: float
    order: int
    # What happens; None when nothing could happen yet (it may schedule itself again).
    act: Callable[[], str | None] = field(compare=False)


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
    # 群活码 (config_ids) customers scan at events to join a customer group.
    join_ways: list[str] = field(default_factory=list)
    # Channel QR code tickets by scene; without one a follow comes from search.
    tickets: dict[str, str] = field(default_factory=dict)
    # Harpoon's public address: the browser opens pages under it, and nothing else.
    # Empty: nobody reads (only callbacks).
    harpoon_url: str = ""
    # Tracked links people come across in articles (a 阅读原文, a repost).
    articles: list[str] = field(default_factory=list)
    # How long a reader stays on a hosted page (most near the low end); the beacon reports
    # it once that much time has passed, since Harpoon caps a claim by the time since the
    # view began.
    reading_seconds: tuple[int, int] = (20, 180)

    def __post_init__(self):
        self.random = random.Random(self.seed)
        self.people = [self._person(n) for n in range(self.population_size)]
        self.actions = 0
        self.pending: list[Pending] = []
        self._order = itertools.count()
        self._browsers: dict[str, requests.Session] = {}

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
            # A mobile number of its own (the last digits are the person's number).
            phone=f"1{self.random.choice('3589')}{self.random.randrange(10**5):05d}{n:04d}",
            email=f"buyer{self.seed}.{n}@example.com" if self.random.random() < 0.5 else "",
        )

    def step(self) -> str:
        """One action by one person; returns what happened, for the demo's log. An action
        whose time has come (a reader leaving a page) goes first."""
        self.actions += 1
        while self.pending and self.pending[0].due <= time.monotonic():
            happened = heapq.heappop(self.pending).act()
            if happened:
                return happened
        person = self.random.choice(self.people)
        if not person.following:
            return self._follow(person)
        roll = self.random.random()
        if roll < 0.45:
            if roll >= 0.35 and self.harpoon_url:
                return self._read(person)
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
        if roll < 0.80 and self.join_ways and person.added_by and not person.in_group:
            return self._join_group(person)
        if roll < 0.90 and self.tickets:
            scene = self.random.choice(sorted(self.tickets))
            xml = oa.scan(self.sandbox, self.oa_tenant, person.openid, self.tickets[scene])
            self._expect_welcome(person, xml)
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
        xml = oa.follow(
            self.sandbox, self.oa_tenant, person.openid, unionid=person.unionid, ticket=ticket
        )
        person.following = True
        if ticket:
            self._expect_welcome(person, xml)
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
            return f"{person.name} tapped {button['name']}"
        # WeChat tells the OA about the tap, and opens the page in its browser.
        oa.view(self.sandbox, self.oa_tenant, person.openid, button["url"])
        tapped = f"{person.name} tapped {button['name']}"
        if self._ours(button["url"]):
            return f"{tapped}: {self._visit(person, button['url'])}"
        return tapped

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

    def _join_group(self, person: Person) -> str:
        """A customer scans a 群活码 at the event and joins the group it admits into."""
        config_id = self.random.choice(self.join_ways)
        try:
            chat_id, _member = wecom_group_marketing.scan_join_way(
                self.sandbox, self.wecom_tenant, config_id, person.external_userid
            )
        except ApiError as refused:
            return f"{person.name} scanned a group code: refused ({refused.errmsg})"
        person.in_group = True
        with self.sandbox.lock:
            name = wecom_groups.groups_of(self.wecom_tenant)[chat_id].name
        return f"{person.name} joined the customer group {name} by its QR code"

    # --- reading: WeChat's browser on Harpoon's pages ------------------------------------

    def _later(self, seconds: float, act: Callable[[], str | None]) -> None:
        heapq.heappush(self.pending, Pending(time.monotonic() + seconds, next(self._order), act))

    def _ours(self, url: str) -> bool:
        return bool(self.harpoon_url) and url.startswith(f"{self.harpoon_url}/")

    def _links_in(self, text: str) -> list[str]:
        return [url for url in URL.findall(text) if self._ours(url)]

    def _read(self, person: Person) -> str:
        """Open a link from their chat (a push, a form's download) not opened yet, else a
        link in an article they came across."""
        unread = [
            url
            for text in oa.received_texts(self.sandbox, self.oa_tenant, person.openid)
            for url in self._links_in(text)
            if url not in person.opened
        ]
        if unread:
            person.opened.add(unread[0])
            return f"{person.name} opened a link from their chat: {self._visit(person, unread[0])}"
        if not self.articles:
            return self._tap_menu(person)
        url = self.random.choice(self.articles)
        return f"{person.name} opened an article's link: {self._visit(person, url)}"

    def _expect_welcome(self, person: Person, xml: str) -> None:
        """A QR code's welcome reply may carry a link (the expo's form): tap it soon."""
        if self.harpoon_url:
            self._later(self._uniform(WELCOME_TAP_SECONDS), lambda: self._tap_welcome(person, xml))

    def _tap_welcome(self, person: Person, xml: str, tries: int = 0) -> str | None:
        reply = oa.passive_reply(self.sandbox, self.oa_tenant, xml)
        if reply is None:  # Harpoon has not answered the callback yet
            if tries < 5:
                self._later(2, lambda: self._tap_welcome(person, xml, tries + 1))
            return None
        links = self._links_in(reply)
        if not links:
            return None
        return f"{person.name} tapped the link in the welcome: {self._visit(person, links[0])}"

    def _visit(self, person: Person, url: str) -> str:
        """Open a link in the person's WeChat browser: a hosted page is read (its beacon
        later), a form filled; a page elsewhere is left to the open internet."""
        try:
            page, elsewhere = self._browse(person, url)
        except requests.RequestException as exc:
            return f"could not open {url} ({type(exc).__name__})"
        if page is None:
            return elsewhere
        if page.form_token:
            if page.form_action in person.filled:
                return f"already registered on 《{page.title}》"
            return self._fill(person, page)
        seconds = self._reading_time()
        if self.random.random() < SHARE_CHANCE and page.share_url:  # while reading
            self._later(seconds * self.random.uniform(0.2, 0.8), lambda: self._share(person, page))
        self._later(seconds, lambda: self._leave(person, page, seconds))
        return f"reading 《{page.title}》"

    def _browser(self, person: Person) -> requests.Session:
        """One browser per person: Harpoon's visitor cookie spares their next link OAuth."""
        browser = self._browsers.get(person.openid)
        if browser is None:
            browser = self._browsers[person.openid] = requests.Session()
            browser.headers["User-Agent"] = WECHAT_BROWSER
        return browser

    def _browse(self, person: Person, url: str) -> tuple[Page | None, str]:
        """(the hosted page, "") or (None, what happened instead), following redirects as
        WeChat's browser does: its OAuth page knows the reader (the sandbox is told)."""
        browser = self._browser(person)
        response = browser.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT)
        for _ in range(MAX_REDIRECTS):
            if not response.is_redirect:
                break
            location = urljoin(response.url, response.headers["Location"])
            if urlsplit(location).path.endswith(AUTHORIZE_PATH):
                location = _with_openid(location, person.openid)
            elif not self._ours(location):
                return None, f"went on to {location}"
            response = browser.get(location, allow_redirects=False, timeout=HTTP_TIMEOUT)
        if response.status_code != 200:
            return None, f"{urlsplit(response.url).path} answered {response.status_code}"
        text = response.text
        token = VIEW_TOKEN.search(text)
        if token is None:
            return None, f"{urlsplit(response.url).path} is no page of Harpoon's"
        share, action, form_token = (
            SHARE_URL.search(text),
            FORM_ACTION.search(text),
            FORM_TOKEN.search(text),
        )
        heading = HEADING.search(text)
        return Page(
            url=response.url,
            title=html.unescape(heading.group(1)) if heading else "",
            view_token=html.unescape(token.group(1)),
            share_url=html.unescape(share.group(1)).strip() if share else "",
            form_action=urljoin(response.url, html.unescape(action.group(1))) if action else "",
            form_token=html.unescape(form_token.group(1)) if form_token else "",
        ), ""

    def _beacon(self, person: Person, page: Page, **fields: str) -> str:
        """Post one beacon of the page's view; "" when it was taken, else why not."""
        try:
            answer = self._browser(person).post(
                urljoin(page.url, "/b"), data={"v": page.view_token, **fields}, timeout=HTTP_TIMEOUT
            )
        except requests.RequestException as exc:
            return f"beacon failed ({type(exc).__name__})"
        return "" if answer.status_code == 204 else f"beacon refused ({answer.status_code})"

    def _share(self, person: Person, page: Page) -> str:
        """The reader shares the page with a colleague, who opens it a little later."""
        problem = self._beacon(person, page, e="share")
        if problem:
            return f"{person.name} shared 《{page.title}》: {problem}"
        colleague = self.random.choice([p for p in self.people if p is not person])
        self._later(
            self._uniform(SHARED_OPEN_SECONDS),
            lambda: self._open_shared(colleague, person, page.share_url),
        )
        return f"{person.name} shared 《{page.title}》 with {colleague.name}"

    def _leave(self, person: Person, page: Page, seconds: int) -> str:
        """The reader leaves the page: maybe a like first, then the beacon with the time
        they read."""
        done = []
        if self.random.random() < LIKE_CHANCE:
            done.append(self._beacon(person, page, e="like") or "liked it")
        read = self._beacon(person, page, e="read", s=str(seconds), f="1")
        done.append(read or f"read it for {seconds} s")
        return f"{person.name} left 《{page.title}》: {', '.join(done)}"

    def _open_shared(self, person: Person, sharer: Person, url: str) -> str:
        return f"{person.name} opened the page {sharer.name} shared: {self._visit(person, url)}"

    def _fill(self, person: Person, page: Page) -> str:
        """Fill the form as the person would: who they are, their phone, sometimes their
        email, and the consent box."""
        data = {
            "form_token": page.form_token,
            "name": person.name,
            "company": person.company,
            "title": person.title,
            "phone": person.phone,
            "consent": "true",
        }
        if person.email:
            data["email"] = person.email
        try:
            answer = self._browser(person).post(
                page.form_action, data=data, allow_redirects=False, timeout=HTTP_TIMEOUT
            )
        except requests.RequestException as exc:
            return f"could not send 《{page.title}》 ({type(exc).__name__})"
        if answer.status_code != 200:
            return f"《{page.title}》 refused the form ({answer.status_code})"
        person.filled.add(page.form_action)
        self._later(self._uniform(DOWNLOAD_LOOK_SECONDS), lambda: self._look_for_download(person))
        return f"filled 《{page.title}》 ({person.title}, {person.company}; phone {person.phone})"

    def _look_for_download(self, person: Person, tries: int = 0) -> str | None:
        """After a form: the download the follow-up sent to their chat, once it came."""
        for text in oa.received_texts(self.sandbox, self.oa_tenant, person.openid):
            for url in self._links_in(text):
                if url not in person.opened:
                    person.opened.add(url)
                    return f"{person.name} got the download in WeChat: {self._visit(person, url)}"
        if tries < 3:
            self._later(5, lambda: self._look_for_download(person, tries + 1))
        return None

    def _reading_time(self) -> int:
        """Seconds on a page: most readers skim, a few read on (a long tail, capped)."""
        low, high = self.reading_seconds
        return min(high, low + round(self.random.expovariate(4 / max(high - low, 1))))

    def _uniform(self, bounds: tuple[float, float]) -> float:
        return self.random.uniform(*bounds)

    def run(self, stop: threading.Event, actions_per_second: float, on_action=None) -> None:
        """Act until `stop` is set, at about the given rate."""
        interval = 1.0 / actions_per_second
        try:
            while not stop.wait(interval):
                try:
                    description = self.step()
                except Exception as exc:  # one person's failed action must not end the demo
                    description = f"an action failed: {type(exc).__name__}: {exc}"
                if on_action:
                    on_action(description)
        finally:
            self.close()

    def close(self) -> None:
        for browser in self._browsers.values():
            browser.close()
        self._browsers.clear()


def _with_openid(authorize_url: str, openid: str) -> str:
    """The platform's OAuth page as WeChat requests it for this reader: the sandbox must be
    told who reads (WeChat knows); the #fragment never leaves the browser."""
    parts = urlsplit(authorize_url)
    query = "&".join(q for q in (parts.query, urlencode({"openid": openid})) if q)
    return urlunsplit(parts._replace(query=query, fragment=""))
