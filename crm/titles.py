"""Job titles, Chinese and English, normalized to a buying-committee role and a seniority.

A shipped default dictionary: ordered rules, first match wins. A workspace's
own synonyms (the Tags page's title dictionary) go in front of these.
"""

import re
from dataclasses import dataclass

SENIORITIES = ("c_level", "vp", "director", "manager", "staff")


@dataclass(frozen=True)
class NormalizedTitle:
    role: str  # e.g. "cio", "procurement"; "other" when nothing matches
    seniority: str  # one of SENIORITIES


def _rule(pattern: str) -> re.Pattern:
    # ASCII: \b is a boundary between Latin letters and anything else, so 集团CIO is a CIO.
    return re.compile(pattern, re.IGNORECASE | re.ASCII)


# (pattern, role); the IT function's head is the CIO whatever the title's wording.
ROLE_RULES: list[tuple[re.Pattern, str]] = [
    (_rule(r"首席信息安全官|\bCISO\b|信息安全|网络安全|security"), "ciso"),
    (_rule(r"首席信息官|\bCIO\b|chief information officer"), "cio"),
    (_rule(r"首席技术官|\bCTO\b|chief technology officer|技术总监|技术副总裁|研发总监"), "cto"),
    (_rule(r"首席财务官|\bCFO\b|chief financial officer"), "cfo"),
    (
        _rule(
            r"首席执行官|\bCEO\b|chief executive|总裁|董事长|^总经理$|general manager"
            r"|创始人|founder"
        ),
        "ceo",
    ),
    (
        _rule(
            r"(信息|科技|数字化|IT|电脑|网络).{0,6}(主任|处长|部长|总经理|总监|负责人|director|head)"
            r"|head of (it|information|technology)|(vp|vice president),? (of )?(it|information)"
        ),
        "cio",
    ),
    (_rule(r"(\bIT\b|信息|运维).{0,4}(经理|主管|manager|lead)"), "it_manager"),
    (_rule(r"采购|procurement|purchas|buyer|sourcing"), "procurement"),
    (_rule(r"财务|会计|finance|financial|controller|accountant"), "finance"),
    (
        _rule(
            r"工程师|engineer|开发|developer|程序员|架构师|architect|\bDBA\b|运维|devops|\bSRE\b"
        ),
        "engineer",
    ),
    (_rule(r"市场|品牌|marketing|\bCMO\b"), "marketing"),
    (_rule(r"销售|sales|商务|business development|\bBD\b|客户经理|account manager"), "sales"),
    (_rule(r"人力|人事|\bHR\b|human resources|招聘|recruit"), "hr"),
    (_rule(r"产品|product"), "product"),
    (_rule(r"运营|operations|\bCOO\b"), "operations"),
]

# (pattern, seniority); checked in this order, so 副总裁 is VP before 总裁 is C-level.
SENIORITY_RULES: list[tuple[re.Pattern, str]] = [
    (_rule(r"副总裁|副总经理|\bVP\b|vice president|\bSVP\b|\bEVP\b|副行长|副院长"), "vp"),
    (
        _rule(
            r"首席|chief|\bC[EIFTMOD]O\b|\bCISO\b|总裁|董事长|创始人|founder|^总经理$"
            r"|general manager|行长|院长"
        ),
        "c_level",
    ),
    (
        _rule(r"总监|主任|处长|部长|局长|负责人|director|head of|(部|中心|处)总经理|\bhead\b"),
        "director",
    ),
    (_rule(r"经理|主管|科长|组长|manager|\blead\b|supervisor"), "manager"),
]


def normalize_title(title: str | None) -> NormalizedTitle:
    """The role and seniority a raw title states; ("other", "staff") for nothing known."""
    text = re.sub(r"\s+", " ", (title or "").strip())
    role = next((role for pattern, role in ROLE_RULES if pattern.search(text)), "other")
    seniority = next((level for pattern, level in SENIORITY_RULES if pattern.search(text)), "staff")
    if role in ("ceo", "cio", "cto", "cfo", "ciso") and _is_chief(text):
        seniority = "c_level"
    return NormalizedTitle(role, seniority)


def _is_chief(text: str) -> bool:
    return bool(re.search(r"首席|chief|\bC[EIFT]O\b|\bCISO\b", text, re.IGNORECASE | re.ASCII))


class TitleDictionary:
    """A workspace's own synonyms (phrase -> role, seniority), then the shipped rules."""

    def __init__(self, synonyms: list[tuple[str, str, str | None]] = ()):
        # Longest phrase first: "信息化办公室主任" before "主任".
        self._synonyms = sorted(
            ((phrase.casefold(), role, seniority) for phrase, role, seniority in synonyms),
            key=lambda entry: len(entry[0]),
            reverse=True,
        )

    def normalize(self, title: str | None) -> NormalizedTitle:
        shipped = normalize_title(title)
        text = (title or "").casefold()
        for phrase, role, seniority in self._synonyms:
            if phrase and phrase in text:
                return NormalizedTitle(role, seniority or shipped.seniority)
        return shipped
