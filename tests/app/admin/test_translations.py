"""Every string of the admin pages has its Chinese translation (zh_CN is the default)."""

from pathlib import Path

from babel.messages.pofile import read_po

CATALOG = (
    Path(__file__).resolve().parents[3] / "app/translations/zh_Hans_CN/LC_MESSAGES/messages.po"
)


def test_the_chinese_catalog_is_complete():
    with CATALOG.open("rb") as f:
        catalog = read_po(f)

    def translated(message) -> bool:
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        return all(strings) and not message.fuzzy

    untranslated = [m.id for m in catalog if m.id and not translated(m)]
    assert untranslated == []
    assert len(catalog) > 150
