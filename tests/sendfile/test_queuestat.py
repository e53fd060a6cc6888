"""What `redctl show` says of SENDFILE's queue, read from a spool folder that RequestSpool itself wrote."""

from __future__ import annotations

import time
from pathlib import Path

from redpss.sendfile.queuestat import describe_queue, queue_summary
from redpss.sendfile.request import parse_request
from redpss.sendfile.spool import RequestSpool


def test_waiting_requests_their_age_and_the_unreadable_ones_are_counted(tmp_path: Path) -> None:
    folder = tmp_path / "sendfile"
    assert describe_queue(queue_summary(folder)) == "no request waiting"  # no folder yet: SENDFILE never took one
    spool = RequestSpool(folder)
    before = int(time.time())
    for number in range(2):
        spool.put(spool.new_id(), parse_request({"source": f"APP1.V_{number}", "to": "ops@example.com"}))
    (folder / "20260101000000-broken.json").write_text("{not json")  # older than both by its id
    assert [request.object_name for _, request in spool.load()] == ["V_0", "V_1"]  # the broken one set aside
    summary = queue_summary(folder)
    assert summary["count"] == 2 and summary["unreadable"] == 1
    assert before - 1 <= summary["oldest"] <= time.time()  # the id's second, local time
    line = describe_queue(summary)
    assert line.startswith("2 request(s) waiting, the oldest accepted " + time.strftime("%Y-%m-%d", time.localtime()))
    assert line.endswith("; 1 unreadable request(s) set aside in the spool folder (*.unreadable, *.reason)")
