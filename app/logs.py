"""One log format for web and workers; worker lines carry the RQ job id."""

import logging

from rq import get_current_job


class JobIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        job = get_current_job()
        record.job_id = job.id if job else "-"
        return True


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if any(isinstance(f, JobIdFilter) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.addFilter(JobIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [job %(job_id)s] %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
