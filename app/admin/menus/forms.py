"""The menu editor's form <-> the menu document: its inputs are named by their position in
the document ("default.0.sub_button.1.key"), so outreach.menus' error positions land on
the input they concern; its buttons add, remove and move buttons and menus."""

import copy
import hashlib
import json

from outreach import menus

MAX_CONDITIONAL_MENUS = 100  # one per OA tag at most
# Enough to read any saved document back; the form never offers more than WeChat allows.
MAX_PARSED_BUTTONS = 20


def new_button() -> dict:
    return {"name": "", "type": "click", "key": ""}


def starter_document() -> dict:
    return {"default": [new_button()], "conditional": []}


def digest(document: dict) -> str:
    """Names the draft the confirmation showed, so what is published is what was seen."""
    text = json.dumps(document, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def apply(document: dict, op: str, target: str) -> str | None:
    """Change the document as the pressed button asks; returns the anchor to show, or None
    for a request no form makes."""
    try:
        match op:
            case "save" | "publish":
                return ""
            case "add":
                buttons = _at(document, target)
                if len(buttons) >= menus.MAX_TOP_BUTTONS:
                    return None
                buttons.append(new_button())
                return f"#b-{target}.{len(buttons) - 1}"
            case "add_sub":
                button = _at(document, target)
                subs = button.setdefault("sub_button", [])
                if len(subs) >= menus.MAX_SUB_BUTTONS:
                    return None
                subs.append(new_button())
                return f"#b-{target}.sub_button.{len(subs) - 1}"
            case "add_menu":
                if len(document["conditional"]) >= MAX_CONDITIONAL_MENUS:
                    return None
                # Most conditional menus share buttons with the default: start from a copy.
                buttons = copy.deepcopy(document["default"]) or [new_button()]
                document["conditional"].append({"tag_id": None, "buttons": buttons})
                return f"#menu-conditional.{len(document['conditional']) - 1}"
            case "remove":
                container, index = _container(document, target)
                container.pop(index)
                return _menu_anchor(target)
            case "up" | "down":
                container, index = _container(document, target)
                other = index - 1 if op == "up" else index + 1
                if not 0 <= other < len(container):
                    return None
                container[index], container[other] = container[other], container[index]
                parent = target.rsplit(".", 1)[0]
                return (
                    f"#menu-{parent}.{other}" if parent == "conditional" else f"#b-{parent}.{other}"
                )
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None
    return None


def _menu_anchor(path: str) -> str:
    """The menu a position is in ("conditional.2" itself: the list of conditional menus)."""
    parts = path.split(".")
    if parts[0] == "default":
        return "#menu-default"
    return f"#menu-conditional.{parts[1]}" if len(parts) > 2 else "#conditional-menus"


def _at(document: dict, path: str):
    node = document
    for part in path.split("."):
        node = node[int(part)] if part.isascii() and part.isdigit() else node[part]
    return node


def _container(document: dict, path: str) -> tuple[list, int]:
    parent, _sep, index = path.rpartition(".")
    container = _at(document, parent)
    if not isinstance(container, list):
        raise TypeError(path)
    index = int(index)
    if not 0 <= index < len(container):
        raise IndexError(path)
    return container, index


def parse_document(form) -> dict:
    """The menu document the editor's inputs describe, as typed (checked elsewhere)."""
    document = {"default": _parse_buttons(form, "default"), "conditional": []}
    for n in range(MAX_CONDITIONAL_MENUS):
        prefix = f"conditional.{n}"
        if f"{prefix}.tag_id" not in form:
            break
        document["conditional"].append(
            {
                "tag_id": _tag_id(form.get(f"{prefix}.tag_id")),
                "buttons": _parse_buttons(form, f"{prefix}.buttons"),
            }
        )
    return document


def _parse_buttons(form, prefix: str) -> list[dict]:
    buttons = []
    for i in range(MAX_PARSED_BUTTONS):
        at = f"{prefix}.{i}"
        if f"{at}.name" not in form:
            break
        if form.get(f"{at}.kind") == "submenu":
            subs = []
            for j in range(MAX_PARSED_BUTTONS):
                if f"{at}.sub_button.{j}.name" not in form:
                    break
                subs.append(_parse_action(form, f"{at}.sub_button.{j}"))
            buttons.append({"name": form.get(f"{at}.name", "").strip(), "sub_button": subs})
        else:
            buttons.append(_parse_action(form, at))
    return buttons


def _parse_action(form, at: str) -> dict:
    def text(name: str) -> str:
        return form.get(f"{at}.{name}", "").strip()

    kind = text("type")
    button = {"name": text("name"), "type": kind}
    if kind == "click":
        button["key"] = text("key")
        tag_id = _tag_id(form.get(f"{at}.tag_id"))
        if tag_id is not None:
            button["tag_id"] = tag_id
        if reply := text("reply"):
            button["reply"] = reply
    elif kind == "view":
        button["url"] = text("url")
    elif kind == "miniprogram":
        button.update(appid=text("appid"), pagepath=text("pagepath"), url=text("url"))
    return button


def _tag_id(value) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() else None
