"""Lanes of the inbox: a person's events go to the lane a stable hash of their key names,
so drains of one workspace run side by side and one person's events stay in order."""

import zlib


def lane_of(person_key: str | None, lanes: int) -> int:
    """The lane of a person's key (crc32: the same in every process, unlike hash())."""
    if not person_key or lanes <= 1:
        return 0
    return zlib.crc32(person_key.encode()) % lanes
