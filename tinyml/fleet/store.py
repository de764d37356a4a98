"""The fleet store: SQLite (one consumer, embedded) or PostgreSQL (any number of consumers).

One schema, plain SQL both engines run. A batch of messages is written in one transaction:
results and alerts with ``INSERT ... ON CONFLICT DO NOTHING`` on (site, id), so a redelivered
or re-published message is stored once; the rows that were really new come back through
``RETURNING`` and feed per-device counters. Those counters live in ``device_stats`` with one
row per (site, device, consumer): each consumer updates only its own rows, so consumers of
one shared-subscription group never wait for each other's locks, and status adds them up.
The caller acknowledges the batch's messages only after ``write`` returned (committed).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tinyml.errors import InputError
from tinyml.fleet.messages import Alert, Message, Rejected, Result, Status

SCHEMA_VERSION = "2"  # 2: results record the gateway port and whether the device was authenticated
MIGRATABLE = ("1",)  # older schemas brought up to date at start (only nullable columns added)
ROWS_PER_INSERT = 500  # rows per multi-row INSERT into SQLite (it allows 32766 parameters)

SCHEMA = """
CREATE TABLE IF NOT EXISTS fleet_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    site TEXT NOT NULL, id TEXT NOT NULL, device TEXT NOT NULL, boot_id BIGINT NOT NULL, seq BIGINT NOT NULL,
    device_ms BIGINT, received_at DOUBLE PRECISION NOT NULL, stored_at DOUBLE PRECISION NOT NULL,
    label INTEGER NOT NULL, class TEXT, anomaly BOOLEAN, score DOUBLE PRECISION, latency BIGINT,
    latency_unit TEXT, port TEXT, authenticated BOOLEAN, PRIMARY KEY (site, id));
CREATE INDEX IF NOT EXISTS results_by_time ON results (received_at);
CREATE TABLE IF NOT EXISTS alerts (
    site TEXT NOT NULL, id TEXT NOT NULL, device TEXT NOT NULL, alert BIGINT NOT NULL, rule TEXT NOT NULL,
    state TEXT NOT NULL, value DOUBLE PRECISION, message TEXT, at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (site, id));
CREATE INDEX IF NOT EXISTS alerts_by_row ON alerts (site, alert);
CREATE TABLE IF NOT EXISTS devices (
    site TEXT NOT NULL, device TEXT NOT NULL, state TEXT, board TEXT, fw_version TEXT, model_hash TEXT,
    boot_id BIGINT, status_at DOUBLE PRECISION, PRIMARY KEY (site, device));
CREATE TABLE IF NOT EXISTS device_stats (
    site TEXT NOT NULL, device TEXT NOT NULL, consumer TEXT NOT NULL, results BIGINT NOT NULL,
    anomalies BIGINT NOT NULL, last_received_at DOUBLE PRECISION, last_label INTEGER, last_class TEXT,
    last_score DOUBLE PRECISION, PRIMARY KEY (site, device, consumer));
CREATE TABLE IF NOT EXISTS rejects (
    source TEXT NOT NULL, reason TEXT NOT NULL, count BIGINT NOT NULL, first_at DOUBLE PRECISION NOT NULL,
    last_at DOUBLE PRECISION NOT NULL, detail TEXT, PRIMARY KEY (source, reason));
"""
# column -> PostgreSQL type, for the unnest() bulk insert
RESULT_COLUMNS = {"site": "text", "id": "text", "device": "text", "boot_id": "bigint", "seq": "bigint",
                  "device_ms": "bigint", "received_at": "float8", "stored_at": "float8", "label": "int",
                  "class": "text", "anomaly": "bool", "score": "float8", "latency": "bigint", "latency_unit": "text",
                  "port": "text", "authenticated": "bool"}
ADDED_COLUMNS = (("results", "port", "TEXT"), ("results", "authenticated", "BOOLEAN"))  # by schema 2
ALERT_COLUMNS = {"site": "text", "id": "text", "device": "text", "alert": "bigint", "rule": "text", "state": "text",
                 "value": "float8", "message": "text", "at": "float8"}
_LATER = "excluded.{t} >= {table}.{t} OR {table}.{t} IS NULL"
STATUS_UPSERT = (
    "INSERT INTO devices (site, device, state, board, fw_version, model_hash, boot_id, status_at) "
    "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (site, device) DO UPDATE SET state = excluded.state, "
    "board = coalesce(excluded.board, devices.board), fw_version = coalesce(excluded.fw_version, devices.fw_version), "
    "model_hash = coalesce(excluded.model_hash, devices.model_hash), "
    "boot_id = coalesce(excluded.boot_id, devices.boot_id), status_at = excluded.status_at "
    f"WHERE {_LATER.format(t='status_at', table='devices')}")
STATS_UPSERT = (
    "INSERT INTO device_stats (site, device, consumer, results, anomalies, last_received_at, last_label, "
    "last_class, last_score) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (site, device, consumer) DO UPDATE SET "
    "results = device_stats.results + excluded.results, anomalies = device_stats.anomalies + excluded.anomalies, "
    + ", ".join(f"{c} = CASE WHEN {_LATER.format(t='last_received_at', table='device_stats')} "
                f"THEN excluded.{c} ELSE device_stats.{c} END"
                for c in ("last_label", "last_class", "last_score", "last_received_at")))
REJECT_UPSERT = (
    "INSERT INTO rejects (source, reason, count, first_at, last_at, detail) VALUES (?,?,?,?,?,?) "
    "ON CONFLICT (source, reason) DO UPDATE SET count = rejects.count + excluded.count, "
    "last_at = excluded.last_at, detail = excluded.detail")


class StoreUnavailable(Exception):
    """The database cannot be written right now (server down, connection lost, lock timeout):
    nothing of the batch was committed, so nothing may be acknowledged; retry later."""


@dataclass
class Written:
    results: int = 0  # new result rows
    duplicates: int = 0  # results already stored (redelivered or re-published)
    alerts: int = 0
    statuses: int = 0
    rejected: int = 0
    per_device: dict[tuple[str, str], int] = field(default_factory=dict)


def is_postgres(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def redact(db: str) -> str:
    """The database for logs and errors: never a password."""
    if not is_postgres(db):
        return db
    parts = urlsplit(db)
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


def check_db_url(db: str) -> None:
    """A password in the URL would sit in argv, shell history and process lists: refuse it."""
    if not is_postgres(db):
        return
    parts = urlsplit(db)
    if parts.password is not None or "password" in parse_qs(parts.query):
        raise InputError(f"the --db URL {redact(db)} carries a password",
                         "drop it from the URL; set PGPASSWORD or put it in a passfile (PGPASSFILE or ~/.pgpass)")


class FleetStore:
    """One connection; ``write`` is one transaction. Not thread-safe: one writer thread."""

    def __init__(self, db: str | Path, *, consumer: str = "status", readonly: bool = False):
        self.db = str(db)
        self.consumer = consumer
        self.postgres = is_postgres(self.db)
        self.readonly = readonly
        self.conn: Any = None
        self._sql_cache: dict[str, str] = {}
        self.connect()

    # --- connection ---------------------------------------------------------------------
    def connect(self) -> None:
        self.conn = self._connect_postgres() if self.postgres else self._connect_sqlite()
        if not self.readonly:
            self._create_schema()
        else:
            self._check_schema()

    def _connect_sqlite(self) -> sqlite3.Connection:
        path = Path(self.db)
        if self.readonly and not path.is_file():
            raise InputError(f"no fleet database at {path}", "give the --db that `tinyml fleet run` uses")
        if not self.readonly and not (path.parent if str(path.parent) else Path(".")).is_dir():
            raise InputError(f"database folder {path.parent} does not exist", "create it or choose another --db")
        uri = f"file:{path}?mode=ro" if self.readonly else f"file:{path}"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30)
            if not self.readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"cannot use fleet database {path}: {exc}",
                             "choose a writable --db path; a file of another program cannot be used") from None
        return conn

    def _connect_postgres(self) -> Any:
        try:
            import psycopg
        except ModuleNotFoundError:
            raise InputError("PostgreSQL needs the psycopg driver",
                             "pip install 'tinyml-toolchain[fleet]' (or psycopg[binary])") from None
        check_db_url(self.db)
        try:
            return psycopg.connect(self.db, autocommit=True, connect_timeout=5,
                                   application_name=f"tinyml-fleet {self.consumer}"[:63])
        except psycopg.OperationalError as exc:
            raise self._explain(exc) from None

    def _explain(self, exc: Exception) -> Exception:
        """A failed PostgreSQL connect as one line: wrong credentials are an error, a server
        that does not answer is an outage (the caller decides whether to wait)."""
        text = " ".join(str(exc).split())
        if "password" in text or "authentication" in text or "role" in text or "does not exist" in text:
            reason = text.split("FATAL:", 1)[-1].strip()
            return InputError(f"PostgreSQL at {redact(self.db)} refused the connection: {reason}",
                              "check the user and database in --db and the password in PGPASSWORD or the passfile "
                              "(PGPASSFILE, ~/.pgpass)")
        return StoreUnavailable(f"PostgreSQL at {redact(self.db)} unavailable: {text[-200:]}")

    def _sql(self, statement: str) -> str:
        if not self.postgres:
            return statement
        known = self._sql_cache.get(statement)
        if known is None:
            known = self._sql_cache[statement] = statement.replace("?", "%s")
        return known

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """BEGIN ... COMMIT; a failure rolls back. Connection-level failures become StoreUnavailable."""
        try:
            if self.postgres:
                with self.conn.transaction():
                    yield self.conn.cursor()
            else:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn.cursor()
                    self.conn.execute("COMMIT")
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
        except sqlite3.OperationalError as exc:  # locked, disk full, I/O error
            raise StoreUnavailable(f"SQLite {self.db}: {exc}") from exc
        except Exception as exc:
            if self.postgres and _is_transient_pg(exc):
                raise StoreUnavailable(f"PostgreSQL at {redact(self.db)}: {' '.join(str(exc).split())[:200]}") from exc
            raise

    def reconnect(self) -> None:
        """After an outage: a fresh connection (raises StoreUnavailable while still down)."""
        self.close()
        try:
            self.connect()
        except StoreUnavailable:
            raise
        except InputError:
            raise
        except Exception as exc:
            if self.postgres and _is_transient_pg(exc):
                raise StoreUnavailable(str(exc)) from exc
            raise

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail; it is gone either way
                self.conn.close()
            self.conn = None

    def _create_schema(self) -> None:
        with self.transaction() as cur:
            if self.postgres:  # consumers starting together must not race on CREATE TABLE
                cur.execute("SELECT pg_advisory_xact_lock(7470914)")
            for statement in filter(str.strip, SCHEMA.split(";")):
                cur.execute(statement)
            cur.execute(self._sql("INSERT INTO fleet_meta (key, value) VALUES ('schema', ?) "
                                  "ON CONFLICT (key) DO NOTHING"), (SCHEMA_VERSION,))
            cur.execute("SELECT value FROM fleet_meta WHERE key = 'schema'")
            if cur.fetchone()[0] in MIGRATABLE:  # in the same transaction: a crash leaves the old schema
                for table, column, kind in ADDED_COLUMNS:
                    if self.postgres:
                        cur.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")
                    elif column not in {r[1] for r in cur.execute(f"PRAGMA table_info({table})").fetchall()}:
                        cur.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                cur.execute(self._sql("UPDATE fleet_meta SET value = ? WHERE key = 'schema'"), (SCHEMA_VERSION,))
        self._check_schema()

    def _check_schema(self) -> None:
        try:
            cur = self.conn.execute("SELECT value FROM fleet_meta WHERE key = 'schema'")
            row = cur.fetchone()
        except Exception as exc:  # noqa: BLE001 - no table: not a fleet database
            if self.postgres and _is_transient_pg(exc):
                raise StoreUnavailable(str(exc)) from exc
            raise InputError(f"{redact(self.db)} is not a fleet database ({' '.join(str(exc).split())[:120]})",
                             "give the --db that `tinyml fleet run` writes") from None
        if row is None or row[0] != SCHEMA_VERSION:
            raise InputError(f"{redact(self.db)} has fleet schema {row[0] if row else 'none'}, this tinyml "
                             f"writes {SCHEMA_VERSION}", "use a new database or the matching tinyml version")

    # --- writing ------------------------------------------------------------------------
    def write(self, messages: Sequence[Message], now: float | None = None) -> Written:
        """Store a batch in one transaction; returns what was new. Raises StoreUnavailable
        when nothing could be committed."""
        now = time.time() if now is None else now
        results = sorted({(m.site, m.id): m for m in messages if isinstance(m, Result)}.values(),
                         key=lambda m: (m.site, m.id))  # one lock order: concurrent batches cannot deadlock
        alerts = sorted({(m.site, m.id): m for m in messages if isinstance(m, Alert)}.values(),
                        key=lambda m: (m.site, m.id))
        statuses = [m for m in messages if isinstance(m, Status)]
        rejected: dict[tuple[str, str], list[Rejected]] = defaultdict(list)
        for m in messages:
            if isinstance(m, Rejected):
                rejected[(m.source, m.reason)].append(m)
        out = Written(statuses=len(statuses), rejected=sum(map(len, rejected.values())))
        with self.transaction() as cur:
            new = self._insert(cur, "results", RESULT_COLUMNS, "site, device, received_at, label, class, score, anomaly",
                               [(r.site, r.id, r.device, r.boot_id, r.seq, r.device_ms, r.received_at, now, r.label,
                                 r.class_name, r.anomaly, r.score, r.latency, r.latency_unit, r.port,
                                 r.authenticated) for r in results])
            out.results = len(new)
            out.duplicates = sum(isinstance(m, Result) for m in messages) - len(new)
            out.alerts = len(self._insert(cur, "alerts", ALERT_COLUMNS, "id",
                                          [(a.site, a.id, a.device, a.alert, a.rule, a.state, a.value, a.message,
                                            a.at) for a in alerts]))
            for s in statuses:
                cur.execute(self._sql(STATUS_UPSERT), (s.site, s.device, s.state, s.board, s.fw_version, s.model_hash,
                                                       s.boot_id, s.at if s.at is not None else now))
            stats = _device_stats(new)
            out.per_device = {key: v[0] for key, v in stats.items()}
            if stats:
                cur.executemany(self._sql(STATS_UPSERT), [(site, device, self.consumer, *values)
                                                          for (site, device), values in sorted(stats.items())])
            if rejected:
                cur.executemany(self._sql(REJECT_UPSERT), [(source, reason, len(ms), now, now, ms[-1].detail)
                                                           for (source, reason), ms in sorted(rejected.items())])
        return out

    def _insert(self, cur: Any, table: str, columns: dict[str, str], returning: str,
                rows: list[tuple]) -> list[tuple]:
        """INSERT ... ON CONFLICT DO NOTHING RETURNING: the rows that were new. PostgreSQL gets
        one array per column (``unnest``): a short statement whatever the batch size, where a
        multi-row VALUES list costs psycopg more CPU to parse than the rows cost to send."""
        if not rows:
            return []
        if self.postgres:
            arrays = ", ".join(f"%s::{kind}[]" for kind in columns.values())
            cur.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
                        f"ON CONFLICT (site, id) DO NOTHING RETURNING {returning}", [list(c) for c in zip(*rows, strict=True)])
            return cur.fetchall()
        new: list[tuple] = []
        for start in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[start:start + ROWS_PER_INSERT]
            one = "(" + ",".join("?" * len(columns)) + ")"
            sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES {','.join([one] * len(chunk))} "
                   f"ON CONFLICT (site, id) DO NOTHING RETURNING {returning}")
            cur.execute(self._sql(sql), [v for row in chunk for v in row])
            new += cur.fetchall()
        return new

    # --- reading ------------------------------------------------------------------------
    def query(self, statement: str, args: Sequence[Any] = ()) -> list[tuple]:
        cur = self.conn.cursor()
        cur.execute(self._sql(statement), tuple(args))
        return cur.fetchall()


def _device_stats(new: list[tuple]) -> dict[tuple[str, str], tuple]:
    """(site, device) -> (results, anomalies, last received_at, its label, class, score)."""
    stats: dict[tuple[str, str], list] = {}
    for site, device, received_at, label, class_name, score, anomaly in new:
        entry = stats.get((site, device))
        if entry is None:
            entry = stats[(site, device)] = [0, 0, None, None, None, None]
        entry[0] += 1
        entry[1] += 1 if anomaly else 0
        if entry[2] is None or received_at >= entry[2]:
            entry[2:] = [received_at, label, class_name, score]
    return {key: tuple(v) for key, v in stats.items()}


def _is_transient_pg(exc: Exception) -> bool:
    """Connection lost, server shutting down, deadlock or serialization failure: retry the batch."""
    import psycopg

    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) or \
        getattr(exc, "sqlstate", "") in ("40001", "40P01", "57P01", "57P02", "57P03")
