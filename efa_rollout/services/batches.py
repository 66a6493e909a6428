"""Batching: enrolments are processed in slices, one transaction (or task run) per slice."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


#: Enrolments per task run: large enough to keep Prefect's per-task cost negligible.
BATCH_SIZE = 2000


def chunks(items: Sequence[T], size: int = BATCH_SIZE) -> Iterator[Sequence[T]]:
    """ITEMS in consecutive slices of at most SIZE."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
