"""Security headers on every response: the content security policy, framing, sniffing,
the referrer and, when Harpoon is served over HTTPS, HSTS.

Pages run only the scripts Harpoon serves itself (htmx and ECharts from node_modules, the
admin's and the readers' .js files): no inline script, no event handler attribute, no
eval. Inline styles stay allowed: templates and ECharts' tooltips set style attributes.
"""

from urllib.parse import urlsplit

from flask import Flask, Response, request

PAGE_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# Readers' pages show images hosted elsewhere (WeChat's image hosts, a sharer's WeCom QR
# code); an image runs no script, and plain http would be mixed content.
READER_POLICY = {**PAGE_POLICY, "img-src": "'self' data: https:"}
# JSON, files and callback replies load nothing, even opened in a browser (an SVG could).
RESOURCE_POLICY = {"default-src": "'none'", "frame-ancestors": "'none'"}
READER_BLUEPRINTS = frozenset({"public", "email_links"})
# The email template editor previews an email in a sandboxed frame (no script, no origin):
# its images may be hosted elsewhere, as in the email itself.
EMAIL_PREVIEW_ENDPOINTS = frozenset({"admin.email_templates_new", "admin.email_templates_edit"})
# Pages opened inside WeCom (the chat sidebar). Against the sandbox they run its client
# bridge and are framed by its WeCom client page; the real client needs neither.
WECOM_BLUEPRINTS = frozenset({"wecom_app"})
HSTS_SECONDS = 365 * 24 * 3600


def policy_header(policy: dict[str, str]) -> str:
    return "; ".join(f"{directive} {sources}" for directive, sources in policy.items())


def _origin(url: str) -> str:
    return "{0.scheme}://{0.netloc}".format(urlsplit(url))


def reader_policy(sandbox_url: str) -> dict[str, str]:
    """Against the sandbox, its pictures too (a 联系我 code's QR code), served over http."""
    if not sandbox_url:
        return READER_POLICY
    return {**READER_POLICY, "img-src": f"{READER_POLICY['img-src']} {_origin(sandbox_url)}"}


def wecom_policy(sandbox_url: str) -> dict[str, str]:
    policy = reader_policy(sandbox_url)
    if sandbox_url:
        origin = _origin(sandbox_url)
        policy = {**policy, "script-src": f"'self' {origin}", "frame-ancestors": origin}
    return policy


def init_app(app: Flask) -> None:
    settings = app.extensions["harpoon"].settings
    reader = policy_header(reader_policy(settings.wechat_api_url))
    page, resource = policy_header(PAGE_POLICY), policy_header(RESOURCE_POLICY)
    https = settings.served_over_https
    wecom_page = policy_header(wecom_policy(settings.wechat_api_url))
    framed_by_sandbox = bool(settings.wechat_api_url)

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        readers_page = request.blueprint in READER_BLUEPRINTS
        wecom = request.blueprint in WECOM_BLUEPRINTS
        headers = response.headers
        if response.mimetype != "text/html":
            headers["Content-Security-Policy"] = resource
        elif wecom:
            headers["Content-Security-Policy"] = wecom_page
        else:
            previews = request.endpoint in EMAIL_PREVIEW_ENDPOINTS
            headers["Content-Security-Policy"] = reader if readers_page or previews else page
        if not (wecom and framed_by_sandbox):
            headers["X-Frame-Options"] = "DENY"
        headers["X-Content-Type-Options"] = "nosniff"
        # Readers' links carry signed tokens: other sites learn the origin only. The admin's
        # addresses name its records: other sites learn nothing.
        headers["Referrer-Policy"] = (
            "strict-origin-when-cross-origin" if readers_page else "same-origin"
        )
        if https:
            headers["Strict-Transport-Security"] = f"max-age={HSTS_SECONDS}"
        return response
