"""Durable outbox: MQTT messages live on disk from the moment they are made until the broker acks them.

Why: events must survive a broker restart *and* a daemon restart (DESIGN.md §4, "nothing lost").
paho keeps unacknowledged QoS 1 messages only in memory, so each message is first written here
(SQLite in WAL mode), handed to paho, and deleted only when its PUBACK arrives. Whatever is
still here at the next start is sent again; consumers de-duplicate on ``event_id``.

>>> box = Outbox(":memory:")
>>> [row] = box.put_many("e1", [("assistant/kitchen/wake", b"{}")], qos=1)
>>> [m.topic for m in box.pending()]
['assistant/kitchen/wake']
>>> box.ack(row.seq); len(box)
0

The class is thread-safe (one connection behind a lock): the publishing thread writes rows and
the sender thread deletes them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT    NOT NULL,
    topic    TEXT    NOT NULL,
    payload  BLOB    NOT NULL,
    qos      INTEGER NOT NULL,
    retain   INTEGER NOT NULL,
    UNIQUE (event_id, topic)
)
"""


@dataclass(frozen=True)
class OutboxMessage:
    """One stored message; ``seq`` is its insertion order and its handle for ``ack``."""

    seq: int
    event_id: str
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Outbox:
    """SQLite-backed FIFO of messages awaiting a broker acknowledgement.

    ``path`` may be ``":memory:"`` (tests). Parent directories are created. Durability is
    ``synchronous=NORMAL`` in WAL mode: a commit survives the process being killed, and costs no
    fsync per event (an SD card on a Pi would not keep up with partials otherwise); a power cut
    can lose the last few commits.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def put_many(
        self, event_id: str, messages: Iterable[tuple[str, bytes]], qos: int, retain: bool = False
    ) -> list[OutboxMessage]:
        """Store all messages of one event in one transaction; returns the stored rows.

        A (event_id, topic) pair already present is kept as it is and not returned again, so
        writing the same event twice does not send it twice.
        """
        rows: list[OutboxMessage] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for topic, payload in messages:
                    cursor = self._db.execute(
                        "INSERT OR IGNORE INTO outbox (event_id, topic, payload, qos, retain)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (event_id, topic, payload, qos, int(retain)),
                    )
                    if cursor.rowcount == 1 and cursor.lastrowid is not None:
                        rows.append(OutboxMessage(cursor.lastrowid, event_id, topic, payload, qos, retain))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return rows

    def pending(self, after_seq: int = 0, limit: int = -1) -> list[OutboxMessage]:
        """Unacknowledged messages with ``seq > after_seq``, oldest first (``limit`` -1 = all)."""
        query = (
            "SELECT seq, event_id, topic, payload, qos, retain FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?"
        )
        with self._lock:
            fetched = self._db.execute(query, (after_seq, limit)).fetchall()
        return [
            OutboxMessage(seq, event_id, topic, bytes(payload), qos, bool(retain))
            for seq, event_id, topic, payload, qos, retain in fetched
        ]

    def ack(self, seq: int) -> None:
        """The broker has the message: forget it. Unknown ``seq`` is a no-op (acks may repeat)."""
        self.ack_many((seq,))

    def ack_many(self, seqs: Sequence[int]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(seq,) for seq in seqs])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._db.close()
