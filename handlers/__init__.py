"""One module per event source: a normalized event -> CRM writes.

`handlers.registry.HANDLERS` maps each event kind to the function that
handles it; importing this package registers them all.
"""

from handlers import groups, oa, push_results, touchpoints, wecom  # noqa: F401  (register them)
from handlers.registry import HANDLERS, EventContext

__all__ = ["HANDLERS", "EventContext"]
