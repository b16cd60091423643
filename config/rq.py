"""RQ periodic jobs, run by `flask --app wsgi cron` (RQ's CronScheduler).

Each entry's name is its dotted path, so restarting cron reconciles rather
than duplicates. The embedded default enqueues them from its worker thread's timer.
"""

from config import Settings


def cron_jobs(settings: Settings) -> list[dict]:
    _high, default = settings.queue_names
    return [
        {
            "func": "app.jobs.sweep_inbox",
            "queue": default,
            "interval": settings.sweep_interval_seconds,
        },
        {"func": "app.jobs.tag_inactive_contacts", "queue": default, "interval": 86400},
        {"func": "app.jobs.refresh_group_send_results", "queue": default, "interval": 600},
        {"func": "app.jobs.refresh_scores", "queue": default, "interval": 86400},
        {"func": "app.jobs.send_due_pushes", "queue": default, "interval": 60},
        {"func": "app.jobs.run_due_journeys", "queue": default, "interval": 15},
    ]
