"""The demo's material library: a cover image drawn with Pillow, the ABM article with that
cover, and a push of the article to the first demo segment, sent as mpnews through its
draft's media_id (the sender uploads the cover and makes the draft when the push starts)."""

import io
from datetime import timedelta

from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import select
from sqlalchemy.orm import Session

from demo.data import ABM_ARTICLE, DEMO_SEGMENTS
from models import Material, Push, PushStatus, SavedSegment, utcnow
from outreach import materials

COVER_SIZE = (900, 383)  # WeChat's 2.35:1 article cover
ARTICLE_BODY = (
    "B2B 的成交从来不是一个人拍板：一家企业的采购，平均有 6 到 10 位决策者参与。\n\n"
    "第一步，画出采购委员会：CIO 关心架构与安全，业务 VP 关心增长，采购关心价格与合规。\n\n"
    "第二步，按角色给内容：同一个账户里的不同的人，看到不同的文章、案例和活动邀请。\n\n"
    "第三步，看账户而不是看线索：三个以上角色活跃、且有 VP 级别参与时，就是销售跟进的时机。"
)
# The push goes a minute after the demo starts, once simulated followers have arrived.
PUSH_DELAY = timedelta(seconds=60)


def cover_png() -> bytes:
    """A simple cover: a blue gradient, a harpoon line and "ABM"."""
    width, height = COVER_SIZE
    image = Image.new("RGB", COVER_SIZE)
    draw = ImageDraw.Draw(image)
    for x in range(width):
        shade = int(40 + 80 * x / width)
        draw.line([(x, 0), (x, height)], fill=(16, shade, 150 + shade // 2))
    draw.line([(80, height - 90), (width - 120, 90)], fill=(255, 255, 255), width=6)
    draw.polygon([(width - 120, 90), (width - 170, 96), (width - 132, 132)], fill=(255, 255, 255))
    draw.text((80, 70), "ABM", fill=(255, 255, 255), font=ImageFont.load_default(size=96))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def seed_demo_library(
    session: Session, workspace_id: int, oa_channel_id: int, owner_id: int, links: dict[str, str]
) -> None:
    """Once per workspace: the cover, the article and the article's push."""
    if session.scalar(select(Material.id).where(Material.workspace_id == workspace_id)):
        return
    cover = materials.save_image(
        session,
        workspace_id,
        name="ABM 实战封面",
        filename="abm-cover.png",
        data=cover_png(),
        created_by=owner_id,
    )
    article = materials.save_card(
        session,
        workspace_id,
        "article",
        {
            "name": "ABM 实战（图文）",
            "title": "ABM 实战：找准采购委员会",
            "author": "Harpoon",
            "digest": "从一个人到一个采购委员会：B2B 营销的目标变了。",
            "body": ARTICLE_BODY,
            "url": links.get("menu_abm") or "https://example.com/blog/abm-buying-committee",
            "cover_id": cover.id,
        },
        created_by=owner_id,
    )
    segment_id = session.scalar(
        select(SavedSegment.id).where(
            SavedSegment.workspace_id == workspace_id, SavedSegment.name == DEMO_SEGMENTS[0][0]
        )
    )
    push = Push(
        workspace_id=workspace_id,
        channel_id=oa_channel_id,
        name=ABM_ARTICLE,
        content={"type": "news", "material_id": article.id},
        segment_id=segment_id,
        status=PushStatus.SCHEDULED,
        scheduled_at=utcnow() + PUSH_DELAY,
        created_by=owner_id,
    )
    push.content = materials.check_push_material(session, workspace_id, push.content)
    session.add(push)
    session.commit()
