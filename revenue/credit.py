"""Attribution as arithmetic: what a touch counts for (its dimensions) and the share of an
opportunity each touch earns under six models. Pure functions, no database:
revenue.attribution reads the touches, calls these and writes the rows.

The models, over one opportunity's touches of one dimension in time order (n touches):
- first_touch: the first touch 1.
- last_touch: the last touch 1.
- linear: each 1/n.
- u_shaped: 40% the first, 40% the last, 20% spread evenly over the touches between;
  one touch 100%, two touches 50/50.
- w_shaped: 30% the first, 30% the milestone touch, 30% the last, 10% spread evenly over
  the others. The milestone is the first touch strictly between the first and the last
  that happened on or after the moment the account became an MQA; without such a touch
  (no MQA, or MQA after every middle touch) it is the middle touch, index (n - 1) // 2.
  One touch 100%, two 50/50; three touches have no "others", so they get a third each.
- time_decay: weight 2^(-age / 7 days), the age counted back from the window's end
  (the opportunity's creation or its win), normalised so the weights sum to 1.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

MODELS = ("first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "time_decay")
HALF_LIFE_DAYS = 7.0
REF_LENGTH = 64  # attribution_touches.ref

# The dimensions a touch can count for, in the order the admin shows them.
DIMENSIONS = (
    "content",
    "push",
    "journey",
    "qr",
    "contact_way",
    "join_way",
    "form",
    "campaign",
    "event",
    "live",
    "email",
    "sales",
    "program",
    "other",
)
# Interactions that are no touch of a person by marketing or sales: bookkeeping of the
# platforms, a person leaving, a refused or failed delivery. The engine never reads them.
NOT_TOUCHES = (
    "wechat.unfollow",
    "wechat.location",
    "wechat.template_send_finished",
    "wechat.mass_send_finished",
    "wecom.contact_edited",
    "wecom.contact_removed",
    "wecom.transfer_failed",
    "wecom.sign_in_refused",
    "wecom.corp_tags_changed",
    "email.bounce",
    "email.complaint",
    "email.unsubscribe",
    "live.leave",
)
SCAN_KINDS = ("wechat.follow", "wechat.scan")
# By kind prefix: the dimension, and the properties that name the thing (else the kind).
_NAMED_BY = {
    "event.": ("event", ("event_id", "event", "title", "name")),
    "webinar.": ("event", ("webinar_id", "event_id", "event", "title", "name")),
    "live.": ("live", ("live_id", "room_id", "title", "name")),
    "email.": ("email", ("email_id", "campaign_id", "subject", "title")),
    "sales.": ("sales", ()),
}


def _ref(value) -> str:
    return str(value)[:REF_LENGTH]


def interaction_dimensions(
    kind: str,
    properties: dict,
    channel_id: int | None,
    qr_codes: dict[tuple[int, str], int],
    contact_ways: dict[tuple[int, str], int],
    join_ways: dict[tuple[int, str], int] | None = None,
) -> list[tuple[str, str]]:
    """What one interaction counts for: (dimension, ref) pairs, at most one per dimension.
    `qr_codes`, `contact_ways` and `join_ways` (群活码) map (channel id, scene or state) to
    the code's id.
    A touch that counts for nothing named is ("other", its kind)."""
    found: dict[str, str] = {}
    if properties.get("content_id") is not None:
        found["content"] = _ref(properties["content_id"])
    if properties.get("form_id") is not None:
        found["form"] = _ref(properties["form_id"])
    if kind in SCAN_KINDS and properties.get("scene") not in (None, ""):
        code = qr_codes.get((channel_id, str(properties["scene"])))
        if code is not None:
            found["qr"] = _ref(code)
    if kind == "wecom.contact_added" and properties.get("state"):
        way = contact_ways.get((channel_id, str(properties["state"])))
        if way is not None:
            found["contact_way"] = _ref(way)
    if kind == "wecom.group_join" and properties.get("state") and join_ways:
        join_way = join_ways.get((channel_id, str(properties["state"])))
        if join_way is not None:
            found["join_way"] = _ref(join_way)
    campaign = properties.get("campaign") or properties.get("utm_campaign")
    if campaign:
        found["campaign"] = _ref(campaign)
    for prefix, (dimension, names) in _NAMED_BY.items():
        if kind.startswith(prefix):
            named = next((properties[n] for n in names if properties.get(n)), None)
            found[dimension] = _ref(named if named is not None else kind)
    if not found:
        found["other"] = _ref(kind)
    return list(found.items())


@dataclass
class Touch:
    """One touch of an opportunity's account: where it was recorded, when, and what it
    counts for."""

    source: str  # models.TouchSource
    source_id: int
    contact_id: int | None
    kind: str
    occurred_at: datetime
    dimensions: list[tuple[str, str]] = field(default_factory=list)

    @property
    def order(self) -> tuple:
        return (self.occurred_at, self.source, self.source_id)


def first_touch(times: list[datetime], **_) -> list[float]:
    return [1.0 if i == 0 else 0.0 for i in range(len(times))]


def last_touch(times: list[datetime], **_) -> list[float]:
    return [1.0 if i == len(times) - 1 else 0.0 for i in range(len(times))]


def linear(times: list[datetime], **_) -> list[float]:
    return [1.0 / len(times)] * len(times)


def _positions(n: int, picked: dict[int, float], rest: float) -> list[float]:
    """`picked` positions get their share, the others split `rest`; with no others the
    picked positions share everything equally."""
    others = n - len(picked)
    if others == 0:
        return [1.0 / n] * n
    return [picked.get(i, rest / others) for i in range(n)]


def u_shaped(times: list[datetime], **_) -> list[float]:
    n = len(times)
    if n <= 2:
        return linear(times)
    return _positions(n, {0: 0.4, n - 1: 0.4}, 0.2)


def milestone_index(times: list[datetime], milestone: datetime | None) -> int:
    """The W-shaped model's middle milestone: the first touch between the first and the
    last on or after `milestone` (the MQA moment), else the middle touch."""
    n = len(times)
    if milestone is not None:
        for i in range(1, n - 1):
            if times[i] >= milestone:
                return i
    return (n - 1) // 2


def w_shaped(times: list[datetime], *, milestone: datetime | None = None, **_) -> list[float]:
    n = len(times)
    if n <= 3:
        return linear(times)
    return _positions(n, {0: 0.3, milestone_index(times, milestone): 0.3, n - 1: 0.3}, 0.1)


def time_decay(times: list[datetime], *, end: datetime, **_) -> list[float]:
    seconds = HALF_LIFE_DAYS * 86400
    weights = [0.5 ** (max((end - t).total_seconds(), 0.0) / seconds) for t in times]
    total = sum(weights)
    return [w / total for w in weights]


CREDIT: dict[str, Callable[..., list[float]]] = {
    "first_touch": first_touch,
    "last_touch": last_touch,
    "linear": linear,
    "u_shaped": u_shaped,
    "w_shaped": w_shaped,
    "time_decay": time_decay,
}


def credits(
    times: list[datetime], end: datetime, milestone: datetime | None = None
) -> dict[str, list[float]]:
    """Each model's shares of touches at `times` (in order): per model they sum to 1."""
    if not times:
        return {model: [] for model in MODELS}
    return {model: CREDIT[model](times, end=end, milestone=milestone) for model in MODELS}


@dataclass(frozen=True)
class Credited:
    touch: Touch
    dimension: str
    ref: str
    shares: dict[str, float]


def attribute(
    touches: Iterable[Touch], end: datetime, milestone: datetime | None = None
) -> list[Credited]:
    """One opportunity's window of touches credited per dimension: each dimension is its
    own lens, so the shares of every model sum to 1 over the touches of one dimension.
    A report summing share x amount over a dimension's rows then splits each influenced
    opportunity once among that dimension's things (content items, pushes...)."""
    by_dimension: dict[str, list[tuple[Touch, str]]] = {}
    for touch in sorted(touches, key=lambda t: t.order):
        for dimension, ref in touch.dimensions:
            by_dimension.setdefault(dimension, []).append((touch, ref))
    out = []
    for dimension, rows in by_dimension.items():
        shares = credits([touch.occurred_at for touch, _ in rows], end, milestone)
        for i, (touch, ref) in enumerate(rows):
            out.append(Credited(touch, dimension, ref, {m: shares[m][i] for m in MODELS}))
    return out
