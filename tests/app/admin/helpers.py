"""Reading and posting the admin pages as a browser does: the CSRF token from the page,
signing in, switching to English, and the errors, rows and cells a page shows."""

import html
import re

from tests.factories import PASSWORD


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in(client, email, password=PASSWORD):
    page = client.get("/admin/login")
    return client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf_token": csrf_token(page.text)},
    )


def post_form(client, path, data):
    """POST a form the way the browser does: with the CSRF token from the page."""
    page = client.get(path)
    return client.post(path, data={**data, "csrf_token": csrf_token(page.text)})


def post_with_token(client, path, data=None, **kwargs):
    """POST with the session's CSRF token, read from the dashboard."""
    token = csrf_token(client.get("/admin/").text)
    return client.post(path, data={**(data or {}), "csrf_token": token}, **kwargs)


def in_english(client):
    """Switch the signed-in user's pages to English (zh_CN is the default)."""
    token = csrf_token(client.get("/admin/").text)
    client.post("/admin/locale", data={"locale": "en", "next": "/admin/", "csrf_token": token})
    return client


def field_errors(page: str, name: str) -> list[str]:
    """The errors shown in the form field that holds the input `name`."""
    for block in re.findall(r'<div class="field[^"]*">(.*?)</div>', page, re.S):
        if f'name="{name}"' in block:
            return [
                html.unescape(e) for e in re.findall(r'<small class="error"[^>]*>(.*?)<', block)
            ]
    raise AssertionError(f"no field {name} on the page")


def contact_ids(page: str) -> list[int]:
    """The contacts listed in the table, in order."""
    return [int(n) for n in re.findall(r'href="/admin/contacts/(\d+)"', page)]


def contact_row(page: str, contact_id: int) -> str:
    """The contacts table's row of the contact."""
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.S):
        if f'href="/admin/contacts/{contact_id}"' in row:
            return row
    raise AssertionError(f"contact {contact_id} is not listed")


def row_cells(page: str, row_id: str) -> list[str]:
    """The number cells of a table row, by the row's id."""
    match = re.search(rf'<tr id="{row_id}"[^>]*>(.*?)</tr>', page, re.S)
    assert match, f"no row {row_id}"
    cells = re.findall(r'<td class="num">(.*?)</td>', match.group(1), re.S)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]
