"""The email pages' forms: a template, its preview (for the sample person or one of the
workspace's contacts), a test send, the SMTP server, and the suppressions' search."""

import re

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from marshmallow import ValidationError as MarshmallowError
from marshmallow import validate
from wtforms import EmailField, IntegerField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from core.outbound import host_problem
from core.references import CONTACT, Reference, declare
from core.text import N_
from outreach.emails import EmailTemplateError, check

MAX_BODY = 200_000
MAX_SMTP_URL = 500  # what the encrypted column (600) holds once encrypted
MAX_CONTACT_ID = 2**63 - 1
PREVIEW_REFERENCES = declare(
    "email_preview",
    Reference("contact_id", CONTACT, N_("No contact #%(id)s in this workspace.")),
)


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class TemplateForm(FlaskForm):
    name = StringField(_l("Name"), filters=[_strip], validators=[InputRequired(), Length(max=100)])
    subject = StringField(
        _l("Subject"), filters=[_strip], validators=[InputRequired(), Length(max=200)]
    )
    body_html = TextAreaField(_l("HTML body"), validators=[InputRequired(), Length(max=MAX_BODY)])

    def renders(self) -> bool:
        """Whether subject and body render for a person with every variable; the reason on
        the field that fails, naming the variable or the line."""
        return show_template_errors(self)


class PreviewForm(FlaskForm):
    """The editor's fields as they are now (not yet saved), and whom to preview for."""

    subject = StringField(filters=[_strip], validators=[Optional(), Length(max=200)])
    body_html = TextAreaField(validators=[Optional(), Length(max=MAX_BODY)])
    contact_id = IntegerField(
        _l("Preview for contact #"), validators=[Optional()], render_kw={"min": 1}
    )

    def validate_contact_id(self, field):
        if field.data is not None and not 0 < field.data <= MAX_CONTACT_ID:
            raise ValidationError(_("No contact #%(id)s in this workspace.", id=field.data))


class TestSendForm(FlaskForm):
    to = EmailField(
        _l("Send a test to"),
        filters=[_strip],
        validators=[InputRequired(), Length(max=254)],
    )

    def validate_to(self, field):
        try:
            validate.Email()(field.data)
        except MarshmallowError as exc:
            raise ValidationError(_("Not an email address.")) from exc


class SmtpForm(FlaskForm):
    """The workspace's own server; the password, never shown back, is kept unless typed."""

    host = StringField(_l("Server"), filters=[_strip], validators=[Optional(), Length(max=253)])
    port = IntegerField(_l("Port"), validators=[Optional()])
    security = StringField(_l("Encryption"), filters=[_strip], default="smtp")
    username = StringField(
        _l("User name"), filters=[_strip], validators=[Optional(), Length(max=200)]
    )
    password = StringField(_l("Password"), validators=[Optional(), Length(max=200)])
    mail_from = StringField(
        _l("From address"), filters=[_strip], validators=[Optional(), Length(max=200)]
    )


def template_problem(exc: EmailTemplateError) -> str:
    """What the editor shows for a template that does not render."""
    if exc.variable:
        return _(
            "Unknown variable “%(name)s”: use one of the variables listed beside the editor.",
            name=exc.variable,
        )
    if exc.line:
        return _("Template syntax error on line %(line)s: %(error)s", line=exc.line, error=exc)
    return _("This template cannot be rendered: %(error)s", error=exc)


def show_template_errors(form) -> bool:
    """Checks subject and body apart, so the error shows on the field it is in."""
    ok = True
    for field, subject, body in (
        (form.subject, form.subject.data or "", ""),
        (form.body_html, "", form.body_html.data or ""),
    ):
        problem = check(subject, body)
        if problem is not None:
            field.errors = [*field.errors, template_problem(problem)]
            ok = False
    return ok


SECURITY_CHOICES = ("smtp", "smtps")


HOST = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*")


def smtp_url_problem(host: str, port, security: str) -> tuple[str, str] | None:
    """(field, why) these settings make no SMTP URL, or None. The host is a name or an IPv4
    address: nothing that could smuggle a user, a path or another port into the URL."""
    if security not in SECURITY_CHOICES:
        return "security", _("Choose STARTTLS or SSL/TLS.")
    if not HOST.fullmatch(host or ""):
        return "host", _("Not a host name, e.g. smtp.example.com.")
    if port is not None and not 0 < port < 65536:
        return "port", _("A port from 1 to 65535.")
    if host_problem(host, port or 25):  # as webhooks: HARPOON_OUTBOUND_ALLOW lets one in
        return "host", _("A private or local address: only public addresses can be reached.")
    return None
