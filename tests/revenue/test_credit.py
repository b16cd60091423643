"""The attribution models on hand-computed examples, and what a touch counts for."""

from datetime import UTC, datetime, timedelta

import pytest

from revenue.credit import (
    MODELS,
    Touch,
    attribute,
    credits,
    interaction_dimensions,
    milestone_index,
)

END = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def days_before(*days: float) -> list[datetime]:
    return [END - timedelta(days=d) for d in days]


def approx(values):
    return pytest.approx(values, abs=1e-12)


def test_four_touches_under_every_model():
    # 28, 14 and 7 days before the window's end, and at its end.
    shares = credits(days_before(28, 14, 7, 0), END)
    assert shares["first_touch"] == [1, 0, 0, 0]
    assert shares["last_touch"] == [0, 0, 0, 1]
    assert shares["linear"] == approx([0.25] * 4)
    # 40 / 40 on the ends, the 20 split over the two between.
    assert shares["u_shaped"] == approx([0.4, 0.1, 0.1, 0.4])
    # No MQA: the milestone is the middle touch (index (4 - 1) // 2 = 1); 10% to the other.
    assert shares["w_shaped"] == approx([0.3, 0.3, 0.1, 0.3])
    # Weights 2^-4, 2^-2, 2^-1, 1 = 1/16, 4/16, 8/16, 16/16, of 29/16 in all.
    assert shares["time_decay"] == approx([1 / 29, 4 / 29, 8 / 29, 16 / 29])


def test_the_w_milestone_is_the_first_middle_touch_on_or_after_the_mqa():
    times = days_before(28, 14, 7, 0)
    # MQA 10 days before the end: the touch 7 days before is the first after it.
    shares = credits(times, END, milestone=END - timedelta(days=10))
    assert shares["w_shaped"] == approx([0.3, 0.1, 0.3, 0.3])
    # MQA exactly at a touch counts that touch.
    assert milestone_index(times, END - timedelta(days=14)) == 1
    # MQA before the window: the first middle touch; after every middle touch: the middle.
    assert milestone_index(times, END - timedelta(days=60)) == 1
    assert milestone_index(times, END - timedelta(days=1)) == 1
    five = days_before(40, 30, 20, 10, 0)
    assert milestone_index(five, END - timedelta(days=1)) == 2
    assert milestone_index(five, END - timedelta(days=12)) == 3


def test_one_two_three_and_five_touches():
    one = credits(days_before(3), END)
    assert all(one[model] == approx([1.0]) for model in MODELS)
    two = credits(days_before(7, 0), END)
    assert two["u_shaped"] == approx([0.5, 0.5])
    assert two["w_shaped"] == approx([0.5, 0.5])
    assert two["time_decay"] == approx([1 / 3, 2 / 3])  # weights 1/2 and 1
    three = credits(days_before(14, 7, 0), END)
    assert three["u_shaped"] == approx([0.4, 0.2, 0.4])
    assert three["w_shaped"] == approx([1 / 3, 1 / 3, 1 / 3])  # no "others" to get 10%
    five = credits(days_before(40, 30, 20, 10, 0), END)
    assert five["u_shaped"] == approx([0.4, 0.2 / 3, 0.2 / 3, 0.2 / 3, 0.4])
    assert five["w_shaped"] == approx([0.3, 0.05, 0.3, 0.05, 0.3])
    assert credits([], END) == {model: [] for model in MODELS}


def test_a_touch_after_the_end_counts_as_at_the_end():
    assert credits(days_before(7, -1), END)["time_decay"] == approx([1 / 3, 2 / 3])


QR = {(1, "100"): 7}
WAYS = {(2, "expo"): 9}


@pytest.mark.parametrize(
    "kind, properties, channel, expected",
    [
        ("content.view", {"content_id": 5}, 1, [("content", "5")]),
        ("content.view", {"content_id": 5, "form_id": 3}, 1, [("content", "5"), ("form", "3")]),
        (
            "form.submit",
            {"form_id": 3, "utm_campaign": "spring"},
            None,
            [("form", "3"), ("campaign", "spring")],
        ),
        ("wechat.scan", {"scene": 100}, 1, [("qr", "7")]),
        ("wechat.follow", {"scene": "100"}, 1, [("qr", "7")]),
        ("wechat.scan", {"scene": 100}, 2, [("other", "wechat.scan")]),  # another OA's scene
        ("wecom.contact_added", {"state": "expo"}, 2, [("contact_way", "9")]),
        ("wecom.contact_added", {"state": "gone"}, 2, [("other", "wecom.contact_added")]),
        ("webinar.attend", {"title": "数字化转型"}, None, [("event", "数字化转型")]),
        (
            "event.checkin",
            {"campaign": "秋季峰会"},
            None,
            [("campaign", "秋季峰会"), ("event", "event.checkin")],
        ),
        ("live.watch", {"live_id": 42}, None, [("live", "42")]),
        ("email.open", {"subject": "新品"}, None, [("email", "新品")]),
        ("sales.meeting", {}, None, [("sales", "sales.meeting")]),
        ("wechat.menu_click", {"key": "x"}, 1, [("other", "wechat.menu_click")]),
    ],
)
def test_what_an_interaction_counts_for(kind, properties, channel, expected):
    assert interaction_dimensions(kind, properties, channel, QR, WAYS) == expected


def test_a_long_campaign_is_cut_to_the_column():
    ((dimension, ref),) = interaction_dimensions("x.y", {"campaign": "c" * 100}, None, {}, {})
    assert (dimension, len(ref)) == ("campaign", 64)


def test_attribute_credits_each_dimension_on_its_own():
    a, b, c = days_before(20, 10, 0)
    touches = [
        Touch("interaction", 3, 1, "content.view", c, [("content", "5")]),
        Touch("interaction", 1, 1, "content.view", a, [("content", "5"), ("campaign", "q4")]),
        Touch("push", 2, 1, "push", b, [("push", "8")]),
    ]
    rows = attribute(touches, END)
    by = {(r.dimension, r.touch.source_id): r.shares for r in rows}
    assert set(by) == {("content", 1), ("content", 3), ("campaign", 1), ("push", 2)}
    # Content: the read 20 days before is first, the one at the end last.
    assert by[("content", 1)]["first_touch"] == 1 and by[("content", 3)]["last_touch"] == 1
    assert by[("content", 1)]["time_decay"] == pytest.approx(
        0.5 ** (20 / 7) / (0.5 ** (20 / 7) + 1)
    )
    # A dimension with one touch gives it the whole opportunity under every model.
    assert all(by[("campaign", 1)][m] == 1 and by[("push", 2)][m] == 1 for m in MODELS)
    for dimension in ("content", "campaign", "push"):
        for model in MODELS:
            total = sum(r.shares[model] for r in rows if r.dimension == dimension)
            assert total == pytest.approx(1.0)
