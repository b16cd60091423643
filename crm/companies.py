"""Company names normalized so that one company is one account.

上海华信科技有限公司, 上海华信科技(中国)有限公司 and 上海华信科技 are the same
account; so are "Siemens Ltd., China" and "SIEMENS".
"""

import re
import unicodedata

# Legal forms and decorations, longest first, Chinese and English.
_SUFFIXES = [
    "股份有限公司",
    "有限责任公司",
    "集团有限公司",
    "集团股份有限公司",
    "有限公司",
    "股份公司",
    "集团公司",
    "总公司",
    "分公司",
    "公司",
    "集团",
]
_SUFFIXES.sort(key=len, reverse=True)
_REGION_NOTES = re.compile(r"[(（](中国|china|集团|总部)[)）]", re.IGNORECASE)
_ENGLISH_FORMS = re.compile(
    r"[,.\s]*\b(co\.?,?\s*ltd\.?|company\s+limited|co\.?|ltd\.?|limited|inc\.?|incorporated"
    r"|corp\.?|corporation|llc|gmbh|plc|s\.a\.|ag|group)\b\.?",
    re.IGNORECASE | re.ASCII,
)
_TRAILING_COUNTRY = re.compile(r"[,\s]+(china|\(china\))$", re.IGNORECASE)


def normalize_company(name: str | None) -> str:
    """A key for matching: no legal form, no '(中国)', one case, one width, no spaces."""
    text = unicodedata.normalize("NFKC", name or "").strip()
    text = _REGION_NOTES.sub("", text)
    text = _ENGLISH_FORMS.sub(" ", text)
    text = _TRAILING_COUNTRY.sub("", text.strip(" ,."))
    changed = True
    while changed:  # 某某集团有限公司 -> 某某
        changed = False
        for suffix in _SUFFIXES:
            if text.endswith(suffix) and len(text) > len(suffix):
                text = text[: -len(suffix)]
                changed = True
    text = _REGION_NOTES.sub("", text)
    key = re.sub(r"[\s,.·•]+", "", text).lower()
    # A name that is nothing but a legal form keeps itself rather than matching every other.
    return key or re.sub(r"[\s,.·•]+", "", unicodedata.normalize("NFKC", name or "")).lower()
