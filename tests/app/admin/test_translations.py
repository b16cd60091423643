"""Every string the code and templates mark for translation has its Chinese translation
(zh_CN is the default): a catalog extracted afresh, as `make translations` extracts it,
against the committed zh_Hans_CN catalog."""

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_keywords, parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[3]
CHINESE = ROOT / "app/translations/zh_Hans_CN/LC_MESSAGES/messages.po"
KEYWORDS = ["_l", "N_", "lazy_pgettext:1c,2"]  # the Makefile's `translations` target's -k


def extract(directory: Path) -> Catalog:
    """The messages of the code and templates babel.cfg names, written to `directory` as a
    template and read back."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    keywords = {**DEFAULT_KEYWORDS, **parse_keywords(KEYWORDS)}
    catalog = Catalog()
    for filename, lineno, message, comments, context in extract_from_dir(
        ROOT, method_map, options_map, keywords
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    template = directory / "messages.pot"
    with template.open("wb") as f:
        write_po(f, catalog)
    with template.open("rb") as f:
        return read_po(f)


def translated(message) -> bool:
    if message is None or message.fuzzy:
        return False
    strings = message.string if isinstance(message.string, tuple) else (message.string,)
    return all(strings)


def test_every_string_in_the_code_and_templates_has_its_chinese_translation(tmp_path):
    fresh = extract(tmp_path)
    with CHINESE.open("rb") as f:
        chinese = read_po(f)

    untranslated = [
        f"{message.id!r}"
        + (f" (context {message.context!r})" if message.context else "")
        + f" at {', '.join(f'{path}:{line}' for path, line in message.locations)}"
        for message in fresh
        if message.id and not translated(chinese.get(message.id, message.context))
    ]
    assert len(fresh) > 150  # the extraction found the strings (babel.cfg names their files)
    assert not untranslated, "no Chinese translation in messages.po for:\n" + "\n".join(
        untranslated
    )


def definitions(text: str) -> list[str]:
    """Each entry's msgctxt and msgid lines (continuations included), in file order."""
    keys, entry, in_key = [], [], False
    for line in text.splitlines():
        if line.startswith(("msgctxt ", "msgid ")):
            entry, in_key = ([] if line.startswith("msgctxt ") or not in_key else entry), True
            entry.append(line)
        elif line.startswith('"') and in_key:
            entry.append(line)
        elif line.startswith("msgstr") or line.startswith("msgid_plural"):
            if in_key:
                keys.append("\n".join(entry))
            entry, in_key = [], False
    return keys


def test_the_chinese_catalog_defines_each_message_once():
    """A message defined twice compiles with pybabel (the last wins) but fails GNU msgfmt,
    and one of the two translations is silently lost."""
    keys = definitions(CHINESE.read_text(encoding="utf-8"))
    assert len(keys) > 1000
    assert sorted({key for key in keys if keys.count(key) > 1}) == []
