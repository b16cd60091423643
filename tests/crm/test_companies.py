import pytest

from crm.companies import normalize_company

SAME = [
    ("上海华信科技有限公司", "上海华信科技"),
    ("上海华信科技(中国)有限公司", "上海华信科技"),
    ("上海华信科技（中国）有限公司", "上海华信科技"),
    ("北京中科软件股份有限公司", "北京中科软件"),
    ("武汉光谷制药股份有限公司", "武汉光谷制药"),
    ("成都天府教育集团", "成都天府教育"),
    ("重庆长江物流有限责任公司", "重庆长江物流"),
    ("深圳前海金融服务集团有限公司", "深圳前海金融服务"),
    ("Siemens Ltd., China", "siemens"),
    ("SIEMENS", "siemens"),
    ("Acme Co., Ltd.", "acme"),
    ("Acme Corporation", "acme"),
    ("Acme Inc.", "acme"),
    ("ＡＣＭＥ　Ｉｎｃ．", "acme"),  # full-width, as typed on Chinese keyboards
    ("  杭州 云栖数据 有限公司 ", "杭州云栖数据"),
]


@pytest.mark.parametrize("raw, key", SAME)
def test_normalized_key(raw, key):
    assert normalize_company(raw) == key


def test_a_name_is_never_emptied():
    assert normalize_company("有限公司") != ""
    assert normalize_company("Ltd.") != ""
    assert normalize_company("") == ""
    assert normalize_company(None) == ""
