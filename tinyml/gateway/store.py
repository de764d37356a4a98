"""The gateway's SQLite store: results, devices, ports, alerts and the MQTT outbox in one file.

WAL mode with ``synchronous=FULL``: a batch is durable once ``commit`` returns, and only
then is it acknowledged (counted, logged, forwarded). The outbox lives in the same file
and is written in the same transaction as the records it announces, so a crash can never
store a result without queueing its message, or the other way round. Duplicates are
refused by the UNIQUE key (device, boot_id, seq).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tinyml.errors import InputError

# 2 added evidence_requests and evidence_windows; 3 the source of results; 4 replaced the index of results
# by (device, id) with the boots table (see _migrate)
SCHEMA_VERSION = 4
DEVICE_COUNTERS = ("results", "duplicates", "missing", "reboots", "frames", "bad_frames",
                   "text_lines", "device_errors")
PORT_COUNTERS = ("connects", "frames", "bad_frames", "text_lines", "unidentified", "refused")
# Columns schema 3 added to tables of older databases: where each result came from and whether its
# device proved its key (issue 16), and the port's refusals. Rows from before say NULL (unknown).
ADDED_COLUMNS = (("results", "port", "TEXT"), ("results", "authenticated", "INTEGER"),
                 ("devices", "authenticated", "INTEGER"), ("ports", "refused", "INTEGER NOT NULL DEFAULT 0"))

EVIDENCE_SCHEMA = """
CREATE TABLE IF NOT EXISTS evidence_requests (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, alert_id INTEGER, rule TEXT, requested_at REAL NOT NULL,
    windows_asked INTEGER NOT NULL, windows_received INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS evidence_requests_by_device ON evidence_requests (device, requested_at);
CREATE TABLE IF NOT EXISTS evidence_windows (
    id INTEGER PRIMARY KEY, request_id INTEGER, device TEXT NOT NULL, boot_id INTEGER NOT NULL,
    window INTEGER NOT NULL, device_ms INTEGER, received_at REAL NOT NULL, fs REAL NOT NULL,
    samples INTEGER NOT NULL, channels INTEGER NOT NULL, sensor TEXT, data BLOB NOT NULL,
    result_id INTEGER, UNIQUE (device, boot_id, window));
CREATE INDEX IF NOT EXISTS evidence_windows_by_time ON evidence_windows (received_at);
"""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY, port TEXT, board TEXT, fw_version TEXT, model_hash TEXT, classes TEXT,
    boot_id INTEGER, last_seq INTEGER, first_seen REAL, last_seen REAL, authenticated INTEGER,
    {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in DEVICE_COUNTERS)});
CREATE TABLE IF NOT EXISTS ports (
    port TEXT PRIMARY KEY, connected INTEGER NOT NULL DEFAULT 0, device TEXT, last_error TEXT,
    changed_at REAL, {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in PORT_COUNTERS)});
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, boot_id INTEGER NOT NULL, seq INTEGER NOT NULL,
    received_at REAL NOT NULL, device_ms INTEGER, latency INTEGER, latency_unit INTEGER,
    label INTEGER, anomaly INTEGER, score REAL, output BLOB, port TEXT, authenticated INTEGER,
    UNIQUE (device, boot_id, seq));
CREATE INDEX IF NOT EXISTS results_by_time ON results (received_at);
CREATE TABLE IF NOT EXISTS boots (
    device TEXT NOT NULL, boot_id INTEGER NOT NULL, first_id INTEGER NOT NULL, PRIMARY KEY (device, boot_id));
CREATE INDEX IF NOT EXISTS boots_in_order ON boots (device, first_id);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, rule TEXT NOT NULL, value REAL, message TEXT,
    fired_at REAL NOT NULL, cleared_at REAL);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts (cleared_at);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL, topic TEXT NOT NULL,
    msg_id TEXT NOT NULL, payload TEXT NOT NULL, created_at REAL NOT NULL);
""" + EVIDENCE_SCHEMA


# A result row, in this order: device, boot_id, seq, received_at, device_ms, latency,
# latency_unit, label, anomaly, score, output, port, authenticated (the writer builds these tuples directly).
_RESULT_VALUES = ("(device, boot_id, seq, received_at, device_ms, latency, latency_unit, label, anomaly,"
                  " score, output, port, authenticated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)")

_DEVICES_UPSERT = (f"INSERT INTO devices (device, first_seen, last_seen, boot_id, last_seq, {', '.join(DEVICE_COUNTERS)}) "
                   f"VALUES ({', '.join('?' * (5 + len(DEVICE_COUNTERS)))}) ON CONFLICT (device) DO UPDATE SET "
                   "last_seen = excluded.last_seen, boot_id = excluded.boot_id, last_seq = excluded.last_seq, "
                   + ", ".join(f"{c} = {c} + excluded.{c}" for c in DEVICE_COUNTERS))
_PORTS_UPSERT = (f"INSERT INTO ports (port, {', '.join(PORT_COUNTERS)}) VALUES ({', '.join('?' * (1 + len(PORT_COUNTERS)))}) "
                 f"ON CONFLICT (port) DO UPDATE SET {', '.join(f'{c} = {c} + excluded.{c}' for c in PORT_COUNTERS)}")


@dataclass(frozen=True)
class RetentionLimits:
    """How much history to keep; ``None`` means no limit of that kind."""

    max_age_s: float | None = 30 * 86400.0
    max_results: int | None = None
    max_bytes: int | None = None


def _check_counters(names: Iterable[str], allowed: Sequence[str], table: str) -> None:
    """ValueError for a counter name the table has no column for."""
    unknown = set(names) - set(allowed)
    if unknown:
        raise ValueError(f"unknown {table} counters {sorted(unknown)}")


def _nonzero(counts: dict[str, int], allowed: Sequence[str], table: str) -> dict[str, int]:
    """The counters that changed; ValueError for a name the table has no column for."""
    _check_counters(counts, allowed, table)
    return {k: v for k, v in counts.items() if v}


def _check_writable(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"database path {path} is a directory", "give a file name, e.g. gateway.db")
    if not parent.is_dir():
        raise InputError(f"database folder {parent} does not exist",
                         "create the folder or choose another --db path")
    target = path if path.exists() else parent
    if not os.access(target, os.W_OK):
        raise InputError(f"database path {path} is not writable",
                         "choose a --db path in a folder you can write to")


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the database, turning SQLite's failures into one-line errors."""
    if readonly and not path.exists():
        raise InputError(f"no gateway database at {path}", "give the --db that `gateway run` uses")
    if not readonly:
        _check_writable(path)
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                               timeout=30)
        conn.execute("PRAGMA busy_timeout = 30000")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:
        if "unable to open" not in str(exc):
            raise _unusable(path, exc) from None
        raise InputError(f"cannot open database {path}: not writable or not creatable ({exc})",
                         "choose a --db path in a folder you can write to") from None
    except sqlite3.DatabaseError as exc:
        raise _unusable(path, exc) from None
    return conn


def _unusable(path: Path, exc: Exception) -> InputError:
    return InputError(f"cannot use database {path}: {exc}",
                      "the file is corrupt or not a gateway database; move it away and start with a new --db")


MIGRATABLE = ("1", "2", "3", str(SCHEMA_VERSION))  # schemas this gateway opens (older ones are migrated)
# One lock per database file for the write transactions of this process's connections (the writer's
# and the forwarder's outbox deletes): a transaction that finds the file locked by another connection
# waits in SQLite's busy handler, which sleeps 1-100 ms at a time and so held commits back by up to
# hundreds of ms at line rate (issue 20); a lock wakes the waiter as soon as the other commits.
_WRITE_LOCKS: dict[Path, threading.RLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(path: Path) -> threading.RLock:
    key = path.resolve()
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.RLock())


def device_results(conn: sqlite3.Connection, device: str, columns: str, limit: int, *,
                   newest_first: bool) -> list[tuple]:
    """A device's first or last ``limit`` results as (boot_id, seq, *columns) rows, in the order they
    were made: its boots in the order they were first stored, each boot by seq. That is the order
    of ``id`` except for a result stored after a later one of its boot (a gap filled late), and it
    needs no index of results by (device, id), which cost each result another leaf page written per
    device and commit (issue 20). One query per boot, each on the unique (device, boot_id, seq) index."""
    order = "DESC" if newest_first else "ASC"
    rows: list[tuple] = []
    for (boot_id,) in conn.execute(f"SELECT boot_id FROM boots WHERE device = ? ORDER BY first_id {order}",
                                   (device,)).fetchall():
        if len(rows) >= limit:
            break
        rows += conn.execute(f"SELECT boot_id, seq, {columns} FROM results WHERE device = ? AND boot_id = ? "
                             f"ORDER BY seq {order} LIMIT ?", (device, boot_id, limit - len(rows))).fetchall()
    return rows


class Store:
    """One writer connection. Callers group their writes in ``transaction()``."""

    migrated_from: str | None = None

    def __init__(self, path: Path, check: bool = True):
        """``check`` runs SQLite's quick_check (reads the whole file): once per start is enough."""
        self.path = Path(path)
        self.conn = connect(self.path)
        self._lock = _write_lock(self.path)
        try:
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "meta" not in tables:
                raise InputError(f"database {self.path} belongs to something else (tables: "
                                 f"{', '.join(sorted(tables)[:5])})", "give the gateway its own --db file")
            version = self.conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone() \
                if tables else None
            if version is not None and version[0] not in MIGRATABLE:
                raise InputError(f"database {self.path} has schema {version[0]}, this gateway "
                                 f"needs {SCHEMA_VERSION}", "use a new --db file, or the tinyml that wrote it")
            self._migrate(None if version is None else version[0])
            verdict = self.conn.execute("PRAGMA quick_check").fetchone()[0] if check else "ok"
        except sqlite3.DatabaseError as exc:
            raise _unusable(self.path, exc) from None
        if verdict != "ok":
            raise InputError(f"database {self.path} is corrupt: {verdict}",
                             "move it away and start with a new --db")

    def _migrate(self, version: str | None) -> None:
        """Create the schema, or bring an older one up to date, in one transaction: a crash
        midway leaves the old schema and its data as they were. Steps 2 and 3 only add tables,
        indexes and nullable columns; step 4 drops the index of results by (device, id) and lists
        the boots of the stored results (one pass over the results' unique index)."""
        with self.transaction():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.conn.execute(statement)
            for table, column, kind in ADDED_COLUMNS:
                if column not in {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")}:
                    self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            if version is not None and int(version) < 4:
                self.conn.execute("DROP INDEX IF EXISTS results_by_device")
                self.conn.execute("INSERT OR IGNORE INTO boots SELECT device, boot_id, min(id) FROM results "
                                  "GROUP BY device, boot_id")
            self.conn.execute("INSERT INTO meta VALUES ('schema', ?) ON CONFLICT (key) DO UPDATE SET value = "
                              "excluded.value", (str(SCHEMA_VERSION),))
        if version is not None and version != str(SCHEMA_VERSION):
            self.migrated_from: str | None = version

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; rolls back when the block raises."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    # --- writes (inside a transaction) ---------------------------------------------------
    def insert_result(self, row: tuple) -> bool:
        """Store a result row; False when its (device, boot_id, seq) is already stored."""
        cur = self.conn.execute(f"INSERT OR IGNORE INTO results {_RESULT_VALUES}", row)
        return cur.rowcount == 1

    def insert_new_results(self, rows: Sequence[tuple]) -> None:
        """Store result rows whose key is known to be new with one statement. A plain INSERT:
        a key that exists after all fails the whole batch instead of being skipped silently."""
        if rows:
            self.conn.executemany(f"INSERT INTO results {_RESULT_VALUES}", rows)

    def max_seq(self, device: str, boot_id: int) -> int | None:
        """The highest stored seq of one boot of a device (None when it has none)."""
        return self.conn.execute("SELECT max(seq) FROM results WHERE device = ? AND boot_id = ?",
                                 (device, boot_id)).fetchone()[0]

    def add_boot(self, device: str, boot_id: int) -> None:
        """List a boot before its first result is stored (a boot listed already keeps its place)."""
        self.conn.execute("INSERT OR IGNORE INTO boots VALUES (?, ?, (SELECT coalesce(max(id), 0) + 1 FROM results))",
                          (device, boot_id))

    def update_device(self, device: str, now: float, counts: dict[str, int], **fields: object) -> None:
        """Create the device row if needed, set ``last_seen`` and the given columns and add
        ``counts`` to its counters, in one statement (once per device and batch)."""
        cols = {"last_seen": now, **fields}
        counts = _nonzero(counts, DEVICE_COUNTERS, "devices")
        names = ["device", "first_seen", *cols, *counts]
        updates = [*(f"{k} = excluded.{k}" for k in cols), *(f"{k} = {k} + excluded.{k}" for k in counts)]
        self.conn.execute(f"INSERT INTO devices ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
                          f"ON CONFLICT (device) DO UPDATE SET {', '.join(updates)}",
                          (device, now, *cols.values(), *counts.values()))

    def update_devices(self, rows: Sequence[tuple[str, float, int | None, int | None, dict[str, int]]]) -> None:
        """``update_device`` for many devices with no columns but ``boot_id`` and ``last_seq``, each
        row (device, now, boot_id, last_seq, counts): one statement for all, every counter added (a
        statement per device and its SQL built each time cost about three times as much)."""
        _check_counters((name for *_, counts in rows for name in counts), DEVICE_COUNTERS, "devices")
        self.conn.executemany(_DEVICES_UPSERT, [(device, now, now, boot_id, last_seq,
                                                 *(counts.get(c, 0) for c in DEVICE_COUNTERS))
                                                for device, now, boot_id, last_seq, counts in rows])

    def set_port(self, port: str, now: float, **fields: object) -> None:
        self.conn.execute("INSERT OR IGNORE INTO ports (port) VALUES (?)", (port,))
        cols = {"changed_at": now, **fields}
        self.conn.execute(f"UPDATE ports SET {', '.join(f'{k} = ?' for k in cols)} WHERE port = ?",
                          (*cols.values(), port))

    def mark_ports_down(self, now: float) -> None:
        """No port is connected while the gateway is not running."""
        with self.transaction():
            self.conn.execute("UPDATE ports SET connected = 0, changed_at = ? WHERE connected = 1", (now,))

    def add_port_counts(self, counts: dict[str, dict[str, int]]) -> None:
        """Create each port's row if needed and add to its counters (port -> counts), in one statement."""
        _check_counters((name for c in counts.values() for name in c), PORT_COUNTERS, "ports")
        self.conn.executemany(_PORTS_UPSERT, [(port, *(c.get(k, 0) for k in PORT_COUNTERS))
                                              for port, c in counts.items()])

    def open_alert(self, device: str, rule: str, value: float, message: str, now: float) -> int:
        cur = self.conn.execute("INSERT INTO alerts (device, rule, value, message, fired_at) "
                                "VALUES (?,?,?,?,?)", (device, rule, value, message, now))
        return int(cur.lastrowid)

    def close_alert(self, device: str, rule: str, now: float) -> int | None:
        """Clear the open alert of this rule; returns its id (None when none was open)."""
        row = self.conn.execute("SELECT id FROM alerts WHERE device = ? AND rule = ? AND "
                                "cleared_at IS NULL ORDER BY id DESC LIMIT 1", (device, rule)).fetchone()
        if row is None:
            return None
        self.conn.execute("UPDATE alerts SET cleared_at = ? WHERE id = ?", (now, row[0]))
        return int(row[0])

    def enqueue(self, rows: Sequence[tuple[str, str, str, str, float]]) -> None:
        """Queue MQTT messages, in order: (device, topic, msg_id, payload, created_at) each."""
        if rows:
            self.conn.executemany("INSERT INTO outbox (device, topic, msg_id, payload, created_at) "
                                  "VALUES (?,?,?,?,?)", rows)

    # --- reads used at start-up to restore in-memory state -------------------------------
    def devices(self) -> list[sqlite3.Row]:
        self.conn.row_factory = sqlite3.Row
        try:
            return self.conn.execute("SELECT * FROM devices").fetchall()
        finally:
            self.conn.row_factory = None

    def device(self, device: str) -> sqlite3.Row | None:
        self.conn.row_factory = sqlite3.Row
        try:
            return self.conn.execute("SELECT * FROM devices WHERE device = ?", (device,)).fetchone()
        finally:
            self.conn.row_factory = None

    def open_alerts(self, device: str | None = None) -> list[tuple[str, str]]:
        """(device, rule) of the open alerts, of every device or of one."""
        if device is None:
            return self.conn.execute("SELECT device, rule FROM alerts WHERE cleared_at IS NULL").fetchall()
        return self.conn.execute("SELECT device, rule FROM alerts WHERE cleared_at IS NULL AND device = ?",
                                 (device,)).fetchall()

    def first_scores(self, device: str, limit: int) -> list[float]:
        """The device's oldest ``limit`` scores, oldest first."""
        return [r[2] for r in device_results(self.conn, device, "score", limit, newest_first=False)]

    def last_scores(self, device: str, limit: int, skip_first: int = 0) -> list[float]:
        """The device's newest ``limit`` scores that are not among its ``skip_first`` oldest,
        oldest first."""
        oldest = {r[:2] for r in device_results(self.conn, device, "0", skip_first, newest_first=False)}
        newest = device_results(self.conn, device, "score", limit, newest_first=True)
        return [r[2] for r in reversed(newest) if r[:2] not in oldest]

    def result_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM results").fetchone()[0])

    # --- outbox (used by the forwarder, autocommit) --------------------------------------
    def outbox_after(self, after_id: int, limit: int) -> list[tuple[int, str, str]]:
        """The next messages to send, oldest first, as (id, topic, payload) tuples."""
        return self.conn.execute("SELECT id, topic, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                                 (after_id, limit)).fetchall()

    def outbox_delete(self, ids: Sequence[int]) -> None:
        if ids:
            with self.transaction():  # one statement: ids arrive in order, mostly contiguous
                self.conn.execute("DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))",
                                  (json.dumps(list(ids)),))

    def outbox_depth(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0])

    # --- retention (inside a transaction) -------------------------------------------------
    def delete_expired(self, now: float, limits: RetentionLimits) -> int:
        """Delete results older than the age limit, the oldest beyond the count limit, and the
        oldest while the live data exceeds the size limit (freed pages are reused, so the file
        stops growing). Messages still in the outbox carry their own payload and are kept."""
        deleted = 0
        if limits.max_age_s is not None:
            deleted += self.conn.execute("DELETE FROM results WHERE received_at < ?",
                                         (now - limits.max_age_s,)).rowcount
            self.conn.execute("DELETE FROM alerts WHERE cleared_at < ?", (now - limits.max_age_s,))
            self.conn.execute("DELETE FROM evidence_windows WHERE received_at < ?", (now - limits.max_age_s,))
            self.conn.execute("DELETE FROM evidence_requests WHERE requested_at < ?", (now - limits.max_age_s,))
        if limits.max_results is not None:
            deleted += self._delete_oldest_beyond(limits.max_results)
        if limits.max_bytes is not None:
            # Pages free up only when emptied, so shrink in steps until the live data fits.
            for _ in range(8):
                used, total = self.used_bytes(), self.result_count()
                if used <= limits.max_bytes or total == 0:
                    break
                deleted += self._delete_oldest_beyond(int(total * min(limits.max_bytes / used, 0.9)))
        if deleted:  # a boot none of whose results is left is listed again (at the end) if it sends more
            self.conn.execute("DELETE FROM boots WHERE NOT EXISTS (SELECT 1 FROM results r WHERE r.device = "
                              "boots.device AND r.boot_id = boots.boot_id)")
        return deleted

    # --- evidence windows (inside a transaction) --------------------------------------------
    def evidence_requests_since(self, device: str, since: float) -> int:
        return int(self.conn.execute("SELECT count(*) FROM evidence_requests WHERE device = ? AND requested_at >= ?",
                                     (device, since)).fetchone()[0])

    def add_evidence_request(self, device: str, alert_id: int, rule: str, now: float, windows: int) -> int:
        cur = self.conn.execute("INSERT INTO evidence_requests (device, alert_id, rule, requested_at, windows_asked) "
                                "VALUES (?,?,?,?,?)", (device, alert_id, rule, now, windows))
        return int(cur.lastrowid)

    def add_evidence_window(self, request_id: int, device: str, boot_id: int, window: int, device_ms: int,
                            received_at: float, fs: float, samples: int, channels: int, sensor: str,
                            data: bytes) -> bool:
        """Store one raw window, linked to its request and to the result computed from it
        (same device, boot and seq) when that is stored; False when it is stored already."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO evidence_windows (request_id, device, boot_id, window, device_ms, received_at, fs, "
            "samples, channels, sensor, data, result_id) VALUES (?,?,?,?,?,?,?,?,?,?,?, (SELECT id FROM results "
            "WHERE device = ?2 AND boot_id = ?3 AND seq = ?4))",
            (request_id, device, boot_id, window, device_ms, received_at, fs, samples, channels, sensor, data))
        if cur.rowcount != 1:
            return False
        self.conn.execute("UPDATE evidence_requests SET windows_received = windows_received + 1 WHERE id = ?",
                          (request_id,))
        return True

    def cap_evidence(self, max_bytes: int) -> int:
        """Delete the oldest evidence windows until the samples of the rest fit in ``max_bytes``."""
        return self.conn.execute(
            "DELETE FROM evidence_windows WHERE id <= (SELECT id FROM (SELECT id, sum(length(data)) OVER "
            "(ORDER BY id DESC) AS newer FROM evidence_windows) WHERE newer > ? ORDER BY id DESC LIMIT 1)",
            (max_bytes,)).rowcount

    def _delete_oldest_beyond(self, keep: int) -> int:
        return self.conn.execute("DELETE FROM results WHERE id <= (SELECT id FROM results ORDER BY id DESC "
                                 "LIMIT 1 OFFSET ?)", (keep,)).rowcount

    def used_bytes(self) -> int:
        """Bytes of live data in the database file (pages in use, not free pages)."""
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        free = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * self.conn.execute("PRAGMA page_size").fetchone()[0])
