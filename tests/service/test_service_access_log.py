"""The access log: records reach the audit chain in batches, and none are lost on a failed write."""

from __future__ import annotations

import time
from typing import Any

from service.access_log import ACCESS_BATCH, AccessLog


class Sink:
    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, Any], str]] = []
        self.fail = False

    def append_event(self, kind: str, payload: dict[str, Any], actor: str) -> None:
        if self.fail:
            raise OSError("disk full")
        self.entries.append((kind, payload, actor))


def test_without_a_thread_every_record_is_written_at_once() -> None:
    sink = Sink()
    AccessLog(sink).record("project_read", "p", "analyst:tok_1", what="budget")
    ((kind, payload, actor),) = sink.entries
    assert kind == ACCESS_BATCH and actor == "service"
    assert payload["records"][0]["kind"] == "project_read" and payload["records"][0]["what"] == "budget"


def test_background_batches_and_flush_on_close() -> None:
    sink = Sink()
    log = AccessLog(sink, interval=0.05)
    log.start()
    for i in range(10):
        log.record("query_previewed", "p", "analyst:tok_1", n=i)
    time.sleep(0.3)
    log.record("release_served", "p", "analyst:tok_1")
    log.close()
    records = [r for _, payload, _ in sink.entries for r in payload["records"]]
    assert [r.get("n") for r in records[:10]] == list(range(10))
    assert records[-1]["kind"] == "release_served"
    assert len(sink.entries) < 11  # batched


def test_a_failed_write_keeps_the_records() -> None:
    sink = Sink()
    log = AccessLog(sink)
    log.start()  # so that record() does not write synchronously
    sink.fail = True
    log.record("project_read", "p", "a")
    assert log.flush() == 0
    sink.fail = False
    log.close()
    assert [r["kind"] for _, p, _ in sink.entries for r in p["records"]] == ["project_read"]
