"""Email templates render sandboxed, name what they cannot fill, and build tracked
messages with one-click unsubscribe; MailConnection sends many over one SMTP session."""

import pytest

from outreach.emails import (
    PERSON_VARIABLES,
    Rendered,
    Tracking,
    _text_template,
    build_message,
    check,
    click_is_signed,
    html_to_text,
    person_variables,
    render,
)
from outreach.mail import MailConnection, MailError
from wechat.sandbox.mailbox import BOUNCING_DOMAIN, BUSY_DOMAIN

TRACKING = Tracking(base_url="https://h.example.com", secret="s3cret", token="tok-123")


def test_a_template_renders_the_persons_variables_escaped():
    rendered = render(
        "{{ name }}，{{ company }} 的白皮书",
        "<p>您好 {{ name }}</p><p>{{ title }}</p>",
        person_variables(
            name="王<伟>", company="华信", title="CIO", email="w@x.cn", phone=None, owner=None
        ),
    )
    assert rendered.subject == "王<伟>，华信 的白皮书"
    assert rendered.html == "<p>您好 王&lt;伟&gt;</p><p>CIO</p>"
    assert rendered.text == "您好 王<伟>\n\nCIO"


def test_an_unknown_variable_is_named_and_a_syntax_error_has_its_line():
    unknown = check("Hi {{ name }}", "<p>{{ nmae }}</p>")
    assert unknown is not None and unknown.variable == "nmae"
    broken = check("Hi", "<p>ok</p>\n<p>{% if name %}</p>")
    assert broken is not None and broken.line == 2 and broken.variable is None
    assert check("{{ name }}", "<a href='{{ unsubscribe_url }}'>x</a>") is None


def test_the_sandbox_refuses_reaching_into_python():
    error = check("x", "{{ name.__class__.__mro__ }}")
    assert error is not None
    with pytest.raises(ValueError):
        render("x", "{{ ''.__class__.__subclasses__() }}", dict(PERSON_VARIABLES))


def test_links_go_through_signed_click_urls_and_the_message_carries_one_click_headers():
    rendered = Rendered(
        subject="白皮书",
        html='<p><a href="https://example.com/a?x=1&amp;y=2">读</a> <a href="mailto:a@b">m</a></p>',
        text="读",
    )
    message = build_message(rendered, sender="H <h@x.cn>", to="w@x.cn", tracking=TRACKING)
    assert message["List-Unsubscribe"] == "<https://h.example.com/e/tok-123/u>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = message.get_body(("html",)).get_content()
    assert "https://h.example.com/e/tok-123/c?u=https%3A%2F%2Fexample.com%2Fa%3Fx%3D1%26y%3D2" in (
        html.replace("&amp;", "&")
    )
    assert 'href="mailto:a@b"' in html
    assert 'src="https://h.example.com/e/tok-123/o.gif"' in html
    assert "https://h.example.com/e/tok-123/u" in message.get_body(("plain",)).get_content()
    url = "https://example.com/a?x=1&y=2"
    signature = TRACKING.click_url(url).rsplit("s=", 1)[1]
    assert click_is_signed("s3cret", "tok-123", url, signature)
    assert not click_is_signed("s3cret", "tok-123", "https://evil.example/", signature)
    assert not click_is_signed("other", "tok-123", url, signature)


def test_html_to_text_keeps_paragraphs_and_link_targets():
    text = html_to_text(
        "<style>p{}</style><h1>标题</h1><p>第一段 <a href='https://x.cn'>链接</a></p><p>二</p>"
    )
    assert text == "标题\n\n第一段 链接 (https://x.cn)\n\n二"


def _message(to: str):
    rendered = Rendered(subject="s", html="<p>hi</p>", text="hi")
    return build_message(rendered, sender="h@x.cn", to=to, tracking=TRACKING)


def test_one_connection_sends_many_and_survives_a_refused_address(smtp):
    smtp.mailbox.clear()
    with MailConnection(smtp.url) as connection:
        connection.send(_message("a@x.cn"))
        with pytest.raises(MailError) as bounced:
            connection.send(_message(f"gone@{BOUNCING_DOMAIN}"))
        with pytest.raises(MailError) as busy:
            connection.send(_message(f"later@{BUSY_DOMAIN}"))
        connection.send(_message("b@x.cn"))
    assert bounced.value.permanent and "550" in str(bounced.value)
    assert not busy.value.permanent and "451" in str(busy.value)
    assert smtp.mailbox.received == 2
    assert [m.recipients for m in smtp.mailbox.messages] == [["a@x.cn"], ["b@x.cn"]]
    assert smtp.mailbox.to("a@x.cn")[0].message()["List-Unsubscribe-Post"]


def test_an_unreachable_server_is_a_temporary_error():
    with pytest.raises(MailError) as error:
        MailConnection("smtp://127.0.0.1:1")
    assert not error.value.permanent


def test_the_text_part_from_the_text_template_reads_as_the_html_turned_to_text():
    body = (
        "<h1>{{ company }} 的白皮书</h1><p>{{ name }} 您好，{% if owner %}{{ owner }} 为您"
        "{% else %}我们为您{% endif %}准备了 <b>2026</b> 版 &amp; 附录。</p>"
        '<p><a href="https://x.cn/a?b=1&amp;c=2">下载</a></p>'
    )
    assert _text_template(body) is not None  # rendered as text, not parsed per person
    for owner in ("张三", ""):
        variables = person_variables(
            name="王<伟>", company="华信 & 远景", title="", email="", phone="", owner=owner
        )
        rendered = render("s", body, variables)
        assert rendered.text == html_to_text(rendered.html)
    assert "张三" not in rendered.text and "我们为您" in rendered.text
    # Jinja the text form cannot hold falls back to the person's HTML, turned to text.
    assert _text_template("<p>{{ '<b>' ~ name }}</p>") is None
    odd = render("s", "<p>{{ '<b>' ~ name }}</p>", variables)
    assert odd.text == html_to_text(odd.html) == "<b>王<伟>"
