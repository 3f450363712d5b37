"""The durable outbox: rows stay until acknowledged, survive restarts and crashes, keep order."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from assistant.outbox import Outbox, OutboxMessage


def test_rows_come_back_oldest_first_with_every_field(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3")
    first = box.put_many("e1", [("a/wake", b'{"x":1}'), ("hermes/h", b"{}")], qos=1)
    second = box.put_many("e2", [("a/partial", b"\x00\xff")], qos=0, retain=True)

    assert [row.topic for row in first] == ["a/wake", "hermes/h"]
    assert box.pending() == [*first, *second]
    assert second == [OutboxMessage(second[0].seq, "e2", "a/partial", b"\x00\xff", 0, True)]
    assert first[0].seq < first[1].seq < second[0].seq
    assert len(box) == 3


def test_ack_deletes_only_that_row_and_repeated_acks_are_harmless(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3")
    rows = box.put_many("e1", [("t/1", b"1"), ("t/2", b"2"), ("t/3", b"3")], qos=1)

    box.ack(rows[1].seq)
    box.ack(rows[1].seq)
    box.ack(999_999)

    assert [row.topic for row in box.pending()] == ["t/1", "t/3"]


def test_the_same_event_and_topic_is_stored_once(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3")
    assert len(box.put_many("e1", [("t", b"first")], qos=1)) == 1
    assert box.put_many("e1", [("t", b"again")], qos=1) == []
    assert [row.payload for row in box.pending()] == [b"first"]


def test_pending_pages_after_a_seq(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3")
    rows = [box.put_many(f"e{i}", [("t", b"")], qos=1)[0] for i in range(5)]

    page = box.pending(after_seq=rows[1].seq, limit=2)

    assert [row.event_id for row in page] == ["e2", "e3"]


def test_rows_survive_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state" / "nested" / "outbox.sqlite3"  # parents are created
    box = Outbox(path)
    rows = box.put_many("e1", [("t/1", b"payload")], qos=1)
    box.close()

    reopened = Outbox(path)
    assert reopened.pending() == rows


def test_rows_survive_the_process_being_killed(tmp_path: Path) -> None:
    """A row is on disk once put_many returns, even if the process dies without closing."""
    path = tmp_path / "outbox.sqlite3"
    script = (
        "import os, sys\n"
        "from assistant.outbox import Outbox\n"
        "box = Outbox(sys.argv[1])\n"
        "box.put_many('e1', [('t/1', b'kept')], qos=1)\n"
        "os._exit(9)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(path)], check=False)
    assert result.returncode == 9

    assert [row.payload for row in Outbox(path).pending()] == [b"kept"]


def test_database_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    Outbox(path).put_many("e1", [("t", b"")], qos=1)
    (mode,) = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"


def test_concurrent_writers_and_an_acker_lose_nothing(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3")
    acked: list[int] = []

    def write(worker: int) -> None:
        for i in range(50):
            [row] = box.put_many(f"w{worker}-{i}", [("t", b"x")], qos=1)
            if i % 2 == 0:
                box.ack(row.seq)
                acked.append(row.seq)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    left = box.pending()
    assert len(left) == 4 * 25
    assert {row.event_id for row in left} == {f"w{w}-{i}" for w in range(4) for i in range(1, 50, 2)}
    assert not set(acked) & {row.seq for row in left}


def test_in_memory_outbox_for_tests() -> None:
    box = Outbox(":memory:")
    [row] = box.put_many("e", [("t", b"")], qos=1)
    box.ack(row.seq)
    assert len(box) == 0
