"""Run one function in several threads at once, and see what they raised."""

from __future__ import annotations

import threading
from collections.abc import Callable


def in_threads(work: Callable[[int], object], count: int) -> list[BaseException]:
    """Run ``work(0)`` .. ``work(count - 1)`` each in its own thread, wait for all, and return the
    exceptions they raised (an empty list when none did)."""
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
