"""Benchmark helper: the same work on several parts of the input at once, a thread each
(the fast paths release the GIL, so their rates should scale with threads)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

P = TypeVar("P")


def on_threads(work: Callable[[P], int], parts: Sequence[P]) -> int:
    """Run ``work(part)`` for every part, each in its own thread, all at once; returns
    the sum of what they return (e.g. items done). Exceptions in a thread propagate."""
    done = [0] * len(parts)
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            done[k] = work(parts[k])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(parts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(done)
