"""Tags page: tags by group, rules of each kind, the title dictionary, sync status and retries."""

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.jobs import Job
from crm.rule_config import DEFAULT_PROFILE_PATTERN
from models import (
    AuditLog,
    Contact,
    ContactTag,
    Tag,
    TagRemote,
    TagRule,
    TagSyncItem,
    TitleSynonym,
    utcnow,
)
from tests.app.admin.helpers import csrf_token, in_english
from tests.factories import add_contact, add_rule, add_tag, make_channel, workspace_id
from tests.helpers import (
    OA_CREDS,
    WECOM_CREDS,
    all_of,
    audit_actions,
    harpoon_of,
    queued_jobs,
)

# ---- helpers -----------------------------------------------------------------------------


def get(app, model, row_id):
    with harpoon_of(app).db.session() as session:
        return session.get(model, row_id)


def post(client, path, data=None, headers=None):
    """POST the way the page does, with the CSRF token of the Tags page."""
    token = csrf_token(client.get("/admin/tags").text)
    return client.post(path, data={**(data or {}), "csrf_token": token}, headers=headers)


def errors_at(page: str, input_id: str) -> list[str]:
    """The errors shown in the form field that holds the input with this id."""
    for block in re.findall(r'<div class="field[^"]*"[^>]*>(.*?)</div>', page, re.S):
        if f'id="{input_id}"' in block:
            return [
                html.unescape(e) for e in re.findall(r'<small class="error"[^>]*>(.*?)<', block)
            ]
    raise AssertionError(f"no input {input_id} on the page")


# ---- tags --------------------------------------------------------------------------------


def test_tags_are_listed_by_group_with_labels_and_contact_counts(app, signed_in):
    cio = add_tag(app, "role", "cio")
    cloud = add_tag(app, "interest", "云计算", description="Read cloud articles")
    add_tag(app, "interest", "安全", workspace="globex")
    for _ in range(3):
        add_contact(app, [cio, cloud])
    add_contact(app, [cloud])

    page = in_english(signed_in("viewer")).get("/admin/tags")
    assert page.status_code == 200
    row = re.search(rf'<tr id="tag-{cio}".*?</tr>', page.text, re.S).group(0)
    assert "CIO" in row and '<span class="mono muted">cio</span>' in row
    assert re.search(r'data-count="contacts">3<', row)
    row = re.search(rf'<tr id="tag-{cloud}".*?</tr>', page.text, re.S).group(0)
    assert "Read cloud articles" in row and re.search(r'data-count="contacts">4<', row)
    for group in ("Role", "Seniority", "Industry", "Interest", "Lifecycle", "Manual"):
        assert f"<h2>{group} " in page.text
    assert "安全" not in page.text  # another workspace's tag
    assert "New tag" not in page.text and "/sync" not in page.text  # a viewer only looks


def test_the_page_renders_in_the_default_language_too(signed_in):
    client = signed_in("marketer")
    for tab in ("tags", "rules", "dictionary", "sync"):
        assert client.get(f"/admin/tags?tab={tab}").status_code == 200
    assert client.get("/admin/tags/rules/new").status_code == 200


def test_creating_a_tag_checks_the_name(app, signed_in):
    client = in_english(signed_in("marketer"))
    response = post(client, "/admin/tags/new", {"group": "interest", "name": " 云计算 "})
    assert response.status_code == 302
    [tag] = all_of(app, Tag)
    assert (tag.group, tag.name) == ("interest", "云计算")
    assert response.headers["Location"] == f"/admin/tags?tab=tags#tag-{tag.id}"

    duplicate = post(client, "/admin/tags/new", {"group": "interest", "name": "云计算"})
    assert duplicate.status_code == 200
    assert errors_at(duplicate.text, "name") == ["This group already has a tag with this name."]
    too_long = post(client, "/admin/tags/new", {"group": "manual", "name": "x" * 31})
    assert errors_at(too_long.text, "name") == ["Field cannot be longer than 30 characters."]
    not_a_code = post(client, "/admin/tags/new", {"group": "role", "name": "首席信息官"})
    assert errors_at(not_a_code.text, "name")[0].startswith("Role tags are named by a code: ceo")
    # The same name in another group is another tag.
    assert post(client, "/admin/tags/new", {"group": "manual", "name": "云计算"}).status_code == 302
    assert post(client, "/admin/tags/new", {"group": "role", "name": "cio"}).status_code == 302

    assert len(all_of(app, Tag)) == 3
    assert audit_actions(app) == ["tag.create"] * 3


def test_renaming_a_tag(app, signed_in):
    client = in_english(signed_in("marketer"))
    tag = add_tag(app, "interest", "云")
    add_tag(app, "interest", "安全")
    role = add_tag(app, "role", "cio")

    clash = post(client, f"/admin/tags/{tag}/edit", {"name": "安全", "description": ""})
    assert clash.status_code == 200
    assert errors_at(clash.text, f"tag-{tag}-name") == [
        "This group already has a tag with this name."
    ]
    assert post(client, f"/admin/tags/{tag}/edit", {"name": "云计算", "description": "Cloud"})
    assert (get(app, Tag, tag).name, get(app, Tag, tag).description) == ("云计算", "Cloud")
    # A role tag keeps its code: the contacts' role column mirrors it.
    post(client, f"/admin/tags/{role}/edit", {"name": "boss", "description": "IT heads"})
    assert (get(app, Tag, role).name, get(app, Tag, role).description) == ("cio", "IT heads")

    [rename, describe] = [e for e in all_of(app, AuditLog) if e.action == "tag.update"]
    assert rename.changes["name"] == ["云", "云计算"]
    assert "name" not in describe.changes


def test_sync_flags_mirror_the_tag_on_everyone_who_holds_it(app, signed_in):
    oa = make_channel(app, "oa", OA_CREDS)
    tag = add_tag(app, "interest", "云计算")
    add_contact(app, [tag], openid="o-1", channel_id=oa)
    add_contact(app, [tag])  # no openid: nothing to mirror
    client = in_english(signed_in("marketer"))

    response = post(client, f"/admin/tags/{tag}/sync", {"sync_wechat": "y"})
    assert response.status_code == 302
    assert (get(app, Tag, tag).sync_wechat, get(app, Tag, tag).sync_wecom) == (True, False)
    [item] = all_of(app, TagSyncItem)
    assert (item.channel_id, item.subject, item.action, item.status) == (
        oa,
        "o-1",
        "add",
        "pending",
    )
    assert (Job.SYNC_TAGS, (oa,)) in queued_jobs(app, "low")
    page = client.get("/admin/tags")
    assert re.search(rf'<tr id="tag-{tag}".*?name="sync_wechat" value="y" checked', page.text, re.S)

    post(client, f"/admin/tags/{tag}/sync", {})
    assert get(app, Tag, tag).sync_wechat is False
    assert all_of(app, TagSyncItem) == []  # not sent yet, and no longer wanted
    changes = [e.changes for e in all_of(app, AuditLog) if e.action == "tag.sync"]
    assert [c["sync_wechat"] for c in changes] == [[False, True], [True, False]]


def test_deleting_a_tag_removes_its_contact_links_and_rules(app, signed_in):
    client = in_english(signed_in("marketer"))
    cio = add_tag(app, "role", "cio")
    keep = add_tag(app, "interest", "云计算")
    contact = add_contact(app, [cio, keep], role="cio")
    rule = add_rule(app, cio, kind="menu", name="I am a CIO", config={"key": "ROLE_CIO"})
    page = client.get("/admin/tags")
    assert (
        "the contacts that hold it (1), and the rules that apply it (1) are deleted too."
        in page.text
    )

    assert post(client, f"/admin/tags/{cio}/delete").status_code == 302
    assert get(app, Tag, cio) is None and get(app, TagRule, rule) is None
    assert [link.tag_id for link in all_of(app, ContactTag, ContactTag.tag_id)] == [keep]
    assert get(app, Contact, contact).role is None
    [entry] = [e for e in all_of(app, AuditLog) if e.action == "tag.delete"]
    assert (entry.changes["contacts"], entry.changes["rules"]) == (1, 1)


def test_a_synced_tag_is_not_deleted_until_its_sync_is_off(app, signed_in):
    client = in_english(signed_in("marketer"))
    tag = add_tag(app, "interest", "云计算", sync_wecom=True)
    response = post(client, f"/admin/tags/{tag}/delete")
    assert get(app, Tag, tag) is not None
    assert "Turn off the WeChat and WeCom sync" in client.get(response.headers["Location"]).text


# ---- rules -------------------------------------------------------------------------------

RULE_BASE = {"name": "Rule", "enabled": "y", "position": ""}
# (kind, valid settings, invalid settings, the input that shows the error, the error's start)
RULE_CASES = [
    (
        "keyword",
        {"config-match": "regex", "config-pattern": "报价|price"},
        {"config-match": "regex", "config-pattern": "报价("},
        "config-pattern",
        "not a valid regular expression: ",
    ),
    (
        "menu",
        {"config-key": "ROLE_CIO"},
        {"config-key": "中" * 43},
        "config-key",
        "At most 128 bytes",
    ),
    (
        "profile",
        {"config-pattern": DEFAULT_PROFILE_PATTERN},
        {"config-pattern": "我是(.+)"},
        "config-pattern",
        "Must capture (?P<title>...) or (?P<company>...)",
    ),
    (
        "source",
        {"config-match": "prefix", "config-value": "expo2024"},
        {"config-match": "prefix", "config-value": "  "},
        "config-value",
        "Required.",
    ),
    (
        "behavior",
        {
            "config-kinds": ["content.view", "content.like"],
            "config-min_count": "3",
            "config-days": "30",
            "config-property": "url",
            "config-match": "contains",
            "config-value": "/pricing",
        },
        {"config-min_count": "3", "config-days": "30", "config-match": "equals"},
        "config-min_count",  # the checkboxes sit in a fieldset: checked below
        None,
    ),
    (
        "inactivity",
        {"config-days": "90"},
        {"config-days": "0"},
        "config-days",
        "A whole number from 1 to 730.",
    ),
]


@pytest.mark.parametrize(("kind", "valid", "invalid", "input_id", "error"), RULE_CASES)
def test_each_rule_kind_through_the_form(app, signed_in, kind, valid, invalid, input_id, error):
    client = in_english(signed_in("marketer"))
    tag = add_tag(app, "interest", "定价")
    tag_fields = {} if kind == "profile" else {"tag_id": str(tag)}
    form = client.get(f"/admin/tags/rules/new?kind={kind}")
    assert f'data-kind="{kind}"' in form.text

    rejected = post(
        client, "/admin/tags/rules/new", {**RULE_BASE, "kind": kind, **tag_fields, **invalid}
    )
    assert rejected.status_code == 200
    if error:
        assert errors_at(rejected.text, input_id)[0].startswith(error)
    else:
        assert "Choose at least one interaction." in rejected.text
    assert all_of(app, TagRule) == []

    saved = post(
        client,
        "/admin/tags/rules/new",
        {**RULE_BASE, "kind": kind, **tag_fields, **valid, "reply": "谢谢"},
    )
    assert saved.status_code == 302, saved.text
    [rule] = all_of(app, TagRule)
    assert (rule.kind, rule.enabled, rule.position) == (kind, True, 0)
    assert rule.tag_id == (None if kind == "profile" else tag)
    assert rule.reply == ("谢谢" if kind in ("keyword", "menu", "profile") else None)
    expected = {key.removeprefix("config-"): value for key, value in valid.items()}
    assert rule.config == {
        key: int(value) if key in ("min_count", "days") else value
        for key, value in expected.items()
    }
    assert audit_actions(app) == ["tag_rule.create"]
    listing = client.get(saved.headers["Location"])
    assert re.search(rf'<tr id="rule-{rule.id}"', listing.text)


def test_a_rule_needs_its_tag_and_may_create_one_by_name(app, signed_in):
    client = in_english(signed_in("marketer"))
    keyword = {**RULE_BASE, "kind": "keyword", "config-match": "contains", "config-pattern": "报价"}

    untagged = post(client, "/admin/tags/rules/new", {**keyword, "tag_id": ""})
    assert errors_at(untagged.text, "tag_id") == ["Choose the tag this rule applies."]
    not_a_code = post(
        client,
        "/admin/tags/rules/new",
        {**keyword, "new_tag_group": "seniority", "new_tag_name": "boss"},
    )
    assert errors_at(not_a_code.text, "new_tag_name")[0].startswith("Seniority tags are named")

    post(
        client,
        "/admin/tags/rules/new",
        {**keyword, "new_tag_group": "lifecycle", "new_tag_name": "询价"},
    )
    [tag] = all_of(app, Tag)
    [rule] = all_of(app, TagRule)
    assert (tag.group, tag.name, rule.tag_id) == ("lifecycle", "询价", tag.id)
    assert audit_actions(app) == ["tag.create", "tag_rule.create"]


def test_a_rule_of_another_workspaces_tag_is_refused(app, signed_in):
    client = in_english(signed_in("marketer"))
    theirs = add_tag(app, "interest", "云", workspace="globex")
    response = post(
        client,
        "/admin/tags/rules/new",
        {**RULE_BASE, "kind": "inactivity", "config-days": "30", "tag_id": str(theirs)},
    )
    assert errors_at(response.text, "tag_id") == ["Not a tag of this workspace."]
    assert all_of(app, TagRule) == []


@pytest.mark.parametrize("picked", ["abc", "１２", "12abc", "99999999999"])
def test_a_rule_whose_tag_is_not_an_id_is_a_field_error(app, signed_in, picked):
    """No tag id at all (a full-width "１２", a number past the column's range): the form
    says so, never a 500."""
    client = in_english(signed_in("marketer"))
    add_tag(app, "interest", "云")
    response = post(
        client,
        "/admin/tags/rules/new",
        {**RULE_BASE, "kind": "inactivity", "config-days": "30", "tag_id": picked},
    )
    assert response.status_code == 200
    assert errors_at(response.text, "tag_id") == ["Not a tag of this workspace."]
    assert all_of(app, TagRule) == []


def test_choosing_a_kind_swaps_in_its_fields(app, signed_in):
    client = in_english(signed_in("marketer"))
    behavior = client.get("/admin/tags/rules/fields?kind=behavior", headers={"HX-Request": "true"})
    assert behavior.text.lstrip().startswith('<div id="rule-fields" data-kind="behavior">')
    assert 'name="config-kinds" value="content.view"' in behavior.text
    assert 'name="tag_id"' in behavior.text and 'name="reply"' not in behavior.text
    assert "<html" not in behavior.text
    profile = client.get("/admin/tags/rules/fields?kind=profile")
    assert html.escape(DEFAULT_PROFILE_PATTERN, quote=False) in profile.text
    assert 'name="tag_id"' not in profile.text and 'name="reply"' in profile.text

    # Without JavaScript the form posts itself back with the new kind, saving nothing.
    reloaded = post(
        client, "/admin/tags/rules/new", {**RULE_BASE, "kind": "menu", "action": "reload"}
    )
    assert reloaded.status_code == 200
    assert 'data-kind="menu"' in reloaded.text and 'id="config-key"' in reloaded.text
    assert errors_at(reloaded.text, "config-key") == []
    assert all_of(app, TagRule) == []


def test_editing_disabling_and_deleting_a_rule(app, signed_in):
    client = in_english(signed_in("marketer"))
    tag = add_tag(app, "interest", "定价")
    rule = add_rule(app, tag, reply="稍后联系您")
    form = client.get(f"/admin/tags/rules/{rule}")
    assert 'value="报价"' in form.text and "稍后联系您" in form.text

    changed = {
        **RULE_BASE,
        "name": "Price, exact",
        "kind": "keyword",
        "tag_id": str(tag),
        "config-match": "exact",
        "config-pattern": "报价",
        "reply": "",
        "position": "5",
    }
    assert post(client, f"/admin/tags/rules/{rule}", changed).status_code == 302
    saved = get(app, TagRule, rule)
    assert (saved.name, saved.config["match"], saved.reply, saved.position) == (
        "Price, exact",
        "exact",
        None,
        5,
    )
    [update] = [e for e in all_of(app, AuditLog) if e.action == "tag_rule.update"]
    assert update.changes["config"][1] == {"match": "exact", "pattern": "报价"}
    assert set(update.changes) == {"name", "config", "reply", "position", "ip"}

    post(client, f"/admin/tags/rules/{rule}/toggle")
    assert get(app, TagRule, rule).enabled is False
    listing = client.get("/admin/tags?tab=rules")
    row = re.search(rf'<tr id="rule-{rule}".*?</tr>', listing.text, re.S).group(0)
    assert "Disabled" in row and "Message is “报价”" in row and ">Enable<" in row

    post(client, f"/admin/tags/rules/{rule}/delete")
    assert get(app, TagRule, rule) is None
    assert audit_actions(app)[-2:] == ["tag_rule.disable", "tag_rule.delete"]


def test_the_rules_list_summarises_each_kind(app, signed_in):
    tag = add_tag(app, "behavior", "活跃")
    add_rule(
        app,
        tag,
        kind="behavior",
        name="Reads pricing",
        config={
            "kinds": ["content.view"],
            "min_count": 3,
            "days": 30,
            "property": "url",
            "value": "/pricing",
            "match": "contains",
        },
    )
    add_rule(app, tag, kind="inactivity", name="Quiet", config={"days": 90})
    add_rule(app, None, kind="profile", name="我是", config={"pattern": DEFAULT_PROFILE_PATTERN})
    page = in_english(signed_in("viewer")).get("/admin/tags?tab=rules").text
    assert "At least 3× Viewed content within 30 days where url contains “/pricing”" in page
    assert "No interaction for 90 days" in page
    assert "Sets title and company" in page
    assert "New rule" not in page and "/toggle" not in page


# ---- title dictionary --------------------------------------------------------------------


def test_dictionary_entries_change_what_a_title_reads_as(app, signed_in):
    client = in_english(signed_in("marketer"))
    title = "数据管理部主任"
    before = client.get(f"/admin/tags/dictionary/try?title={title}", headers={"HX-Request": "1"})
    assert re.search(r'data-result="role">Other<', before.text)
    assert re.search(r'data-result="seniority">Director<', before.text)

    added = post(
        client, "/admin/tags/dictionary", {"phrase": "数据管理部", "role": "cio", "seniority": ""}
    )
    assert added.status_code == 302
    [synonym] = all_of(app, TitleSynonym)
    assert (synonym.phrase, synonym.role, synonym.seniority) == ("数据管理部", "cio", None)
    duplicate = post(
        client, "/admin/tags/dictionary", {"phrase": "数据管理部", "role": "cto", "seniority": ""}
    )
    assert errors_at(duplicate.text, "phrase") == ["This phrase is already in the dictionary."]
    empty = post(client, "/admin/tags/dictionary", {"phrase": " ", "role": "cto", "seniority": ""})
    assert errors_at(empty.text, "phrase") == ["This field is required."]

    after = client.get(f"/admin/tags/dictionary/try?title={title}", headers={"HX-Request": "1"})
    assert "<html" not in after.text
    assert re.search(r'data-result="role">CIO<', after.text)
    assert re.search(r'data-result="seniority">Director<', after.text)
    assert re.search(r'data-result="shipped">Other · Director<', after.text)
    # Without htmx the dictionary tab shows the same result.
    plain = client.get(f"/admin/tags/dictionary/try?title={title}")
    assert re.search(r'data-result="role">CIO<', plain.text)
    assert "数据管理部" in plain.text

    # Another workspace's dictionary is its own.
    other = in_english(signed_in("marketer", "globex"))
    theirs = other.get(f"/admin/tags/dictionary/try?title={title}", headers={"HX-Request": "1"})
    assert re.search(r'data-result="role">Other<', theirs.text)
    assert "数据管理部" not in other.get("/admin/tags?tab=dictionary").text

    post(client, f"/admin/tags/dictionary/{synonym.id}/delete")
    assert all_of(app, TitleSynonym) == []
    assert audit_actions(app) == ["title_synonym.create", "title_synonym.delete"]


def test_the_dictionary_tab_shows_the_shipped_rules_on_sample_titles(signed_in):
    page = in_english(signed_in("viewer")).get("/admin/tags?tab=dictionary").text
    assert re.search(r"Harpoon ships \d+ role rules and \d+ seniority rules", page)
    assert "<tr><td>首席信息官</td><td>CIO</td><td>C-level</td></tr>" in page
    assert len(re.findall(r"<tr><td>", page)) == 10
    assert 'action="/admin/tags/dictionary"' not in page  # a viewer may not add


# ---- sync --------------------------------------------------------------------------------


def test_sync_status_per_channel_and_retrying_the_failed_items(app, signed_in):
    oa = make_channel(app, "oa", OA_CREDS)
    wecom = make_channel(app, "wecom", WECOM_CREDS)
    theirs = make_channel(app, "oa", OA_CREDS, workspace="globex")
    cloud = add_tag(app, "interest", "云计算", sync_wechat=True, sync_wecom=True)
    cio = add_tag(app, "role", "cio", sync_wechat=True)
    long_ago = utcnow() - timedelta(days=1)
    with harpoon_of(app).db.session() as session:
        ws = workspace_id(app)
        session.add_all(
            [
                TagRemote(workspace_id=ws, tag_id=cloud, channel_id=oa, remote_id="101"),
                TagRemote(
                    workspace_id=ws,
                    tag_id=cio,
                    channel_id=oa,
                    status="limit",
                    error="45157 too many tags",
                ),
            ]
        )
        statuses = ["pending", "done", "done", "failed", "failed", "over_limit"]
        for n, status in enumerate(statuses):
            session.add(
                TagSyncItem(
                    workspace_id=ws,
                    channel_id=oa,
                    subject=f"o-{n}",
                    tag_id=cloud,
                    action="add",
                    status=status,
                    attempts=3 if status == "failed" else 1,
                    error="errcode 45009" if status == "failed" else None,
                    next_attempt_at=long_ago,
                )
            )
        session.add(
            TagSyncItem(
                workspace_id=ws,
                channel_id=wecom,
                subject="wm-1",
                tag_id=cloud,
                action="remove",
                status="failed",
                attempts=2,
                error="errcode 40068",
            )
        )
        session.commit()
    other_tag = add_tag(app, "interest", "云", workspace="globex", sync_wechat=True)
    with harpoon_of(app).db.session() as session:
        session.add(
            TagSyncItem(
                workspace_id=workspace_id(app, "globex"),
                channel_id=theirs,
                subject="o-x",
                tag_id=other_tag,
                action="add",
                status="failed",
            )
        )
        session.commit()

    client = in_english(signed_in("marketer"))
    page = client.get("/admin/tags?tab=sync").text
    oa_card = re.search(rf'id="sync-channel-{oa}".*?</section>', page, re.S).group(0)
    counts = dict(re.findall(r'data-count="(\w+)">[^<]*?(\d+)</span>', oa_card))
    assert counts == {"pending": "1", "done": "2", "failed": "2", "over_limit": "1"}
    assert "101" in oa_card and "Limit reached" in oa_card and "45157 too many tags" in oa_card
    wecom_card = re.search(rf'id="sync-channel-{wecom}".*?</section>', page, re.S).group(0)
    assert "云计算" in wecom_card and "CIO" not in wecom_card  # cio syncs to OAs only
    assert "Not created on the platform yet." in wecom_card
    problems = re.search(r'<table class="sync-problems">.*?</table>', page, re.S).group(0)
    assert problems.count("<tr data-item=") == 4 and "errcode 40068" in problems
    assert "o-x" not in page and f"sync-channel-{theirs}" not in page

    response = post(client, "/admin/tags/sync/retry")
    assert "3 failed items queued again." in client.get(response.headers["Location"]).text
    with harpoon_of(app).db.session() as session:
        items = session.scalars(select(TagSyncItem).where(TagSyncItem.subject != "o-x")).all()
        retried = [i for i in items if i.subject in ("o-3", "o-4", "wm-1")]
        assert {(i.status, i.attempts) for i in retried} == {("pending", 0)}
        assert all(i.next_attempt_at > long_ago for i in retried)
        assert sorted(i.status for i in items if i not in retried) == [
            "done",
            "done",
            "over_limit",
            "pending",
        ]
        other = session.scalar(select(TagSyncItem).where(TagSyncItem.subject == "o-x"))
        assert other.status == "failed"  # another workspace's item
    assert sorted(queued_jobs(app, "low")) == sorted(
        [(Job.SYNC_TAGS, (oa,)), (Job.SYNC_TAGS, (wecom,))]
    )


def test_sync_now_asks_for_a_sync_of_each_channel(app, signed_in):
    client = in_english(signed_in("marketer"))
    response = post(client, "/admin/tags/sync/run")
    assert "No channel is connected yet." in client.get(response.headers["Location"]).text
    oa = make_channel(app, "oa", OA_CREDS)
    response = post(client, "/admin/tags/sync/run")
    assert "Sync started for 1 channel." in client.get(response.headers["Location"]).text
    post(client, "/admin/tags/sync/run")  # a job already waiting is not queued twice
    assert queued_jobs(app, "low") == [(Job.SYNC_TAGS, (oa,))]
    assert audit_actions(app) == ["tag_sync.run", "tag_sync.run"]


# ---- who may do what ---------------------------------------------------------------------


def test_a_viewer_sees_every_section_but_may_change_nothing(app, signed_in):
    tag = add_tag(app, "interest", "云")
    rule = add_rule(app, tag)
    with harpoon_of(app).db.session() as session:
        synonym = TitleSynonym(workspace_id=workspace_id(app), phrase="数据部", role="cio")
        session.add(synonym)
        session.commit()
    client = signed_in("viewer")
    for tab in ("tags", "rules", "dictionary", "sync"):
        assert client.get(f"/admin/tags?tab={tab}").status_code == 200
    assert client.get("/admin/tags/dictionary/try?title=CIO").status_code == 200
    for path in ("/admin/tags/rules/new", f"/admin/tags/rules/{rule}", "/admin/tags/rules/fields"):
        assert client.get(path).status_code == 403, path
    for path in (
        "/admin/tags/new",
        f"/admin/tags/{tag}/edit",
        f"/admin/tags/{tag}/sync",
        f"/admin/tags/{tag}/delete",
        "/admin/tags/rules/new",
        f"/admin/tags/rules/{rule}",
        f"/admin/tags/rules/{rule}/toggle",
        f"/admin/tags/rules/{rule}/delete",
        "/admin/tags/dictionary",
        f"/admin/tags/dictionary/{synonym.id}/delete",
        "/admin/tags/sync/run",
        "/admin/tags/sync/retry",
    ):
        assert post(client, path, {"name": "x", "group": "manual"}).status_code == 403, path
    assert len(all_of(app, Tag)) == 1 and get(app, TagRule, rule).enabled is True
    assert audit_actions(app) == []


def test_another_workspaces_tags_and_rules_are_out_of_reach(app, signed_in):
    tag = add_tag(app, "interest", "云", workspace="globex")
    rule = add_rule(app, tag, workspace="globex", name="Theirs")
    with harpoon_of(app).db.session() as session:
        synonym = TitleSynonym(
            workspace_id=workspace_id(app, "globex"), phrase="数据部", role="cio"
        )
        session.add(synonym)
        session.commit()
    client = signed_in("admin")
    assert client.get(f"/admin/tags/rules/{rule}").status_code == 404
    for path in (
        f"/admin/tags/{tag}/edit",
        f"/admin/tags/{tag}/sync",
        f"/admin/tags/{tag}/delete",
        f"/admin/tags/rules/{rule}",
        f"/admin/tags/rules/{rule}/toggle",
        f"/admin/tags/rules/{rule}/delete",
        f"/admin/tags/dictionary/{synonym.id}/delete",
    ):
        assert post(client, path, {"name": "x"}).status_code == 404, path
    assert "Theirs" not in client.get("/admin/tags?tab=rules").text
    assert get(app, Tag, tag).name == "云" and get(app, TagRule, rule) is not None


def test_a_dictionary_change_retags_recorded_titles_but_not_stated_roles(app, signed_in):
    from tests.helpers import run_jobs

    said_so = add_tag(app, "role", "cto")
    reads_anew = add_contact(app, title="数据管理部主任")
    stated = add_contact(app, [said_so], title="数据管理部副主任", role="cto")
    client = in_english(signed_in("marketer"))
    post(client, "/admin/tags/dictionary", {"phrase": "数据管理部", "role": "cio", "seniority": ""})
    run_jobs(app)
    roles = {c.id: c.role for c in all_of(app, Contact)}
    assert roles[reads_anew] == "cio"
    assert roles[stated] == "cto"  # the follower's own word outranks the dictionary
