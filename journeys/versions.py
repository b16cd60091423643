"""Journey documents at work: the live versions of a workspace, and each version's parsed
model, read once per drain batch, trigger scan or run."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from journeys.model import Journey
from models import Journey as JourneyRow
from models import JourneyStatus, JourneyVersion


@dataclass(frozen=True)
class Version:
    journey_id: int
    version: int
    model: Journey


class Versions:
    """Journey documents by (journey, version), parsed once per batch or run."""

    def __init__(self, session: Session):
        self.session = session
        self._cache: dict[tuple[int, int], Journey] = {}

    def model(self, journey_id: int, version: int) -> Journey:
        key = (journey_id, version)
        if key not in self._cache:
            doc = self.session.scalar(
                select(JourneyVersion.document).where(
                    JourneyVersion.journey_id == journey_id, JourneyVersion.version == version
                )
            )
            self._cache[key] = Journey.from_document(doc or {"nodes": []})
        return self._cache[key]

    def live(self, workspace_id: int) -> list[Version]:
        rows = self.session.execute(
            select(JourneyRow.id, JourneyRow.live_version)
            .where(
                JourneyRow.workspace_id == workspace_id,
                JourneyRow.status == JourneyStatus.LIVE,
                JourneyRow.live_version.isnot(None),
            )
            .order_by(JourneyRow.id)
        ).all()
        return [Version(j, v, self.model(j, v)) for j, v in rows]
