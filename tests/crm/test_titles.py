"""The shipped title dictionary: raw titles, Chinese and English, to role and seniority."""

import pytest

from crm.titles import SENIORITIES, normalize_title

TITLES = [
    # The IT function's head, however it is called.
    ("首席信息官", "cio", "c_level"),
    ("CIO", "cio", "c_level"),
    ("Chief Information Officer", "cio", "c_level"),
    ("集团CIO", "cio", "c_level"),
    ("信息中心主任", "cio", "director"),
    ("信息中心副主任", "cio", "director"),
    ("科技处处长", "cio", "director"),
    ("信息化办公室主任", "cio", "director"),
    ("IT部总经理", "cio", "director"),
    ("信息科技部总经理", "cio", "director"),
    ("信息技术部部长", "cio", "director"),
    ("数字化转型负责人", "cio", "director"),
    ("IT总监", "cio", "director"),
    ("Head of IT", "cio", "director"),
    ("IT Director", "cio", "director"),
    ("VP of IT", "cio", "vp"),
    ("Vice President, Information Technology", "cio", "vp"),
    ("网络中心主任", "cio", "director"),
    # Technology leadership.
    ("首席技术官", "cto", "c_level"),
    ("CTO", "cto", "c_level"),
    ("技术总监", "cto", "director"),
    ("研发总监", "cto", "director"),
    ("技术副总裁", "cto", "vp"),
    # Security.
    ("首席信息安全官", "ciso", "c_level"),
    ("CISO", "ciso", "c_level"),
    ("信息安全经理", "ciso", "manager"),
    ("网络安全工程师", "ciso", "staff"),
    # Executives and finance.
    ("CEO", "ceo", "c_level"),
    ("总经理", "ceo", "c_level"),
    ("总裁", "ceo", "c_level"),
    ("副总裁", "ceo", "vp"),
    ("董事长", "ceo", "c_level"),
    ("General Manager", "ceo", "c_level"),
    ("Founder", "ceo", "c_level"),
    ("CFO", "cfo", "c_level"),
    ("首席财务官", "cfo", "c_level"),
    ("财务总监", "finance", "director"),
    ("财务经理", "finance", "manager"),
    ("会计", "finance", "staff"),
    ("Finance Controller", "finance", "staff"),
    # IT management and engineering.
    ("IT经理", "it_manager", "manager"),
    ("IT Manager", "it_manager", "manager"),
    ("信息部经理", "it_manager", "manager"),
    ("运维主管", "it_manager", "manager"),
    ("工程师", "engineer", "staff"),
    ("高级工程师", "engineer", "staff"),
    ("软件开发工程师", "engineer", "staff"),
    ("Software Engineer", "engineer", "staff"),
    ("Senior Developer", "engineer", "staff"),
    ("系统架构师", "engineer", "staff"),
    ("运维工程师", "engineer", "staff"),
    ("DBA", "engineer", "staff"),
    ("DevOps Lead", "engineer", "manager"),
    # Procurement.
    ("采购经理", "procurement", "manager"),
    ("采购总监", "procurement", "director"),
    ("采购专员", "procurement", "staff"),
    ("Procurement Manager", "procurement", "manager"),
    ("Purchasing Director", "procurement", "director"),
    ("Sourcing Specialist", "procurement", "staff"),
    # Other functions.
    ("市场经理", "marketing", "manager"),
    ("Marketing Director", "marketing", "director"),
    ("销售总监", "sales", "director"),
    ("客户经理", "sales", "manager"),
    ("人力资源经理", "hr", "manager"),
    ("产品经理", "product", "manager"),
    ("运营专员", "operations", "staff"),
    # Nothing to go on.
    ("", "other", "staff"),
    ("顾问", "other", "staff"),
    ("Consultant", "other", "staff"),
]


@pytest.mark.parametrize("title, role, seniority", TITLES)
def test_title(title, role, seniority):
    normalized = normalize_title(title)
    assert (normalized.role, normalized.seniority) == (role, seniority)


def test_the_table_is_large_and_uses_every_seniority():
    assert len(TITLES) >= 60
    assert {seniority for _, _, seniority in TITLES} == set(SENIORITIES)


def test_whitespace_and_case_do_not_matter():
    assert normalize_title("  head   of it ") == normalize_title("Head of IT")
    assert normalize_title(None) == normalize_title("")
