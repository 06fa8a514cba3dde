"""The run store: one SQLite file per search run, the single source of truth for resume and reports.

A run directory `RUN/` holds `run.sqlite` (config, every trial with its per-item outcomes and node
traces, the optimizer's state after every tell, the agent's transcripts, test-split scores) and
`best_graph.json` (written by the study at the end). Every write is its own transaction, so a
`kill -9` loses at most the trial that was being evaluated; the WAL journal lets a report read the
file while a search is still writing it. Only one process may write a run at a time: the store
takes an exclusive lock file (`RUN/.lock`) when opened for writing.

Reports (issue 7) read only this file, so the schema below is an interface (see DEVELOPERS.md).
The study records its decision in it too (config key `selection`, `ttsgraph.selection.Selection`),
so a report shows what the study chose instead of deciding again.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttsgraph.errors import TtsGraphError
from ttsgraph.graph import Graph
from ttsgraph.jsonutil import to_jsonable

SCHEMA_VERSION = 2  # 2: trials.candidate

_SCHEMA = """
CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    iteration INTEGER NOT NULL,
    position INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT 'search',
    optimizer TEXT NOT NULL,
    seed INTEGER NOT NULL,
    graph_json TEXT NOT NULL,
    graph_hash TEXT NOT NULL,
    planned_units REAL NOT NULL,
    measured_units REAL,
    accuracy REAL NOT NULL,
    utility REAL NOT NULL,
    correct INTEGER NOT NULL,
    scored INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    latency_mean REAL,
    item_ids_json TEXT NOT NULL,
    meta_json TEXT NOT NULL,
    eval_seconds REAL NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    candidate INTEGER NOT NULL DEFAULT 1,
    UNIQUE (kind, iteration, position)
);
CREATE TABLE IF NOT EXISTS item_results (
    trial_id INTEGER NOT NULL REFERENCES trials(id),
    item_id TEXT NOT NULL,
    correct INTEGER NOT NULL,
    extracted TEXT,
    error TEXT,
    wall REAL,
    critical_path REAL,
    sequential REAL,
    trace_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS item_results_trial ON item_results(trial_id);
CREATE TABLE IF NOT EXISTS optimizer_state (id INTEGER PRIMARY KEY, iteration INTEGER NOT NULL,
                                            state_json TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS agent_log (
    id INTEGER PRIMARY KEY,
    iteration INTEGER NOT NULL,
    kind TEXT NOT NULL,
    prompt_json TEXT NOT NULL,
    reply TEXT,
    seconds REAL NOT NULL DEFAULT 0,
    ok INTEGER NOT NULL DEFAULT 1,
    error TEXT,
    meta_json TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS test_results (graph_hash TEXT NOT NULL, split TEXT NOT NULL, summary_json TEXT NOT NULL,
                                         created REAL NOT NULL, PRIMARY KEY (graph_hash, split));
"""


class StoreError(TtsGraphError):
    """A run directory that cannot be created, opened or written (names the path)."""


@dataclass
class TrialRecord:
    """One stored trial, as reports and resume read it back."""

    id: int
    iteration: int
    position: int
    kind: str
    optimizer: str
    seed: int
    graph: Graph
    graph_hash: str
    planned_units: float
    measured_units: float | None
    accuracy: float
    utility: float
    correct: int
    scored: int
    errors: int
    latency_mean: float | None
    item_ids: list[str]
    meta: dict[str, Any]
    eval_seconds: float
    created: float
    candidate: bool = True  # False: a screening probe, never what a selection returns (ttsgraph.selection)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "graph"}
        d["graph"] = self.graph.to_dict()
        return d


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=to_jsonable)


class RunStore:
    """A run directory. `RunStore.create(path)` for a new run (refuses a non-empty one),
    `RunStore.open(path)` to resume or read; `readonly=True` takes no write lock."""

    FILE = "run.sqlite"

    def __init__(self, path: str | Path, *, readonly: bool = False, _create: bool = False) -> None:
        self.path = Path(path)
        self.db_path = self.path / self.FILE
        self.readonly = readonly
        self._lock_fd: int | None = None
        if _create:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{self.path}: cannot create run directory: {exc.strerror}") from None
        elif not self.db_path.exists():
            raise StoreError(f"{self.path}: not a run directory (no {self.FILE})")
        if not readonly:
            self._lock()
        try:
            uri = f"file:{self.db_path}?mode=ro" if readonly else str(self.db_path)
            self.db = sqlite3.connect(uri, uri=readonly, timeout=30.0, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            if not readonly:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.executescript(_SCHEMA)
                self._migrate()
        except sqlite3.Error as exc:
            self.close()
            raise StoreError(f"{self.db_path}: {exc}") from None

    # ----- lifecycle -----------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path) -> RunStore:
        """A new run. Refuses a directory that already holds a run (use `open` to resume)."""
        p = Path(path)
        if (p / cls.FILE).exists():
            raise StoreError(f"{p}: already holds a run; pass --resume to continue it or choose another --out")
        store = cls(p, _create=True)
        store.set_config("schema_version", SCHEMA_VERSION)
        return store

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False) -> RunStore:
        return cls(path, readonly=readonly)

    def _columns(self) -> set[str]:
        return {r[1] for r in self.db.execute("PRAGMA table_info(trials)")}

    def _migrate(self) -> None:
        """Bring a store written by an older version up to this schema (writers only; a read-only
        reader of an old store derives the missing columns instead, see `_trial`)."""
        if "candidate" in self._columns():
            return
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("ALTER TABLE trials ADD COLUMN candidate INTEGER NOT NULL DEFAULT 1")
            for row in self.db.execute("SELECT id, meta_json FROM trials").fetchall():
                if not _meta_candidate(json.loads(row["meta_json"])):
                    self.db.execute("UPDATE trials SET candidate = 0 WHERE id = ?", (row["id"],))
            self.db.execute("INSERT OR REPLACE INTO config(key, value) VALUES ('schema_version', ?)",
                            (_json(SCHEMA_VERSION),))
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def _lock(self) -> None:
        lock_path = self.path / ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"{lock_path}: cannot open lock file: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreError(f"{self.path}: another process is writing this run") from None
        self._lock_fd = fd

    def close(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            db.close()
            self.db = None  # type: ignore[assignment]
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        if self.readonly:
            raise StoreError(f"{self.db_path}: opened read-only")
        return self.db.execute(sql, args)

    # ----- config --------------------------------------------------------------------------
    def set_config(self, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO config(key, value) VALUES (?, ?)", (key, _json(value)))

    def get_config(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM config WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    def config(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self.db.execute("SELECT key, value FROM config")}

    # ----- trials --------------------------------------------------------------------------
    def add_trial(self, evaluation: Any, *, iteration: int, optimizer: str, seed: int, results: list[Any] = (),  # type: ignore[assignment]
                  position: int = 0, kind: str = "search", eval_seconds: float = 0.0) -> int:
        """Store one scored proposal (`search.base.Evaluation`) and its per-item results
        (`executor.ItemResult`) in one transaction; returns the trial id."""
        graph: Graph = evaluation.graph
        try:
            self._write("BEGIN IMMEDIATE")
            cur = self._write(
                "INSERT INTO trials(iteration, position, kind, optimizer, seed, graph_json, graph_hash, planned_units, "
                "measured_units, accuracy, utility, correct, scored, errors, latency_mean, item_ids_json, meta_json, "
                "eval_seconds, created, candidate) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (iteration, position, kind, optimizer, seed, _json(graph.to_dict()), graph.canonical_hash(),
                 float(evaluation.planned_units), _opt(evaluation.measured_units), float(evaluation.accuracy),
                 float(evaluation.utility), int(evaluation.correct), int(evaluation.scored), int(evaluation.errors),
                 _opt(evaluation.latency), _json(list(evaluation.item_ids)),
                 _json({**evaluation.meta, "feedback": evaluation.feedback}), float(eval_seconds), time.time(),
                 int(bool(evaluation.candidate))),
            )
            trial_id = int(cur.lastrowid or 0)
            for r in results:
                self._write(
                    "INSERT INTO item_results(trial_id, item_id, correct, extracted, error, wall, critical_path, "
                    "sequential, trace_json) VALUES (?,?,?,?,?,?,?,?,?)",
                    (trial_id, str(r.item_id), int(bool(r.correct)), r.extracted, r.error, r.wall, r.critical_path,
                     r.sequential, _json({"nodes": [n.to_dict() for n in r.nodes], "output_text": r.output_text,
                                          "planned_flops": r.planned_flops, "measured_flops": r.measured_flops,
                                          "detail": getattr(r, "detail", "")})),
                )
            self._write("COMMIT")
        except sqlite3.IntegrityError as exc:
            self.db.execute("ROLLBACK")
            raise StoreError(f"{self.db_path}: trial ({kind}, iteration {iteration}, position {position}) "
                             f"already stored: {exc}") from None
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return trial_id

    def trials(self, kind: str | None = None) -> list[TrialRecord]:
        """Stored trials in the order they were scored (`kind`: "search", "race", or all)."""
        sql = "SELECT * FROM trials" + (" WHERE kind = ?" if kind else "") + " ORDER BY id"
        return [self._trial(r) for r in self.db.execute(sql, (kind,) if kind else ())]

    def trial(self, trial_id: int) -> TrialRecord:
        row = self.db.execute("SELECT * FROM trials WHERE id = ?", (trial_id,)).fetchone()
        if row is None:
            raise StoreError(f"{self.db_path}: no trial {trial_id}")
        return self._trial(row)

    @staticmethod
    def _trial(r: sqlite3.Row) -> TrialRecord:
        meta = json.loads(r["meta_json"])
        candidate = bool(r["candidate"]) if "candidate" in r.keys() else _meta_candidate(meta)
        return TrialRecord(
            id=r["id"], iteration=r["iteration"], position=r["position"], kind=r["kind"], optimizer=r["optimizer"],
            seed=r["seed"], graph=Graph.from_dict(json.loads(r["graph_json"])), graph_hash=r["graph_hash"],
            planned_units=r["planned_units"], measured_units=r["measured_units"], accuracy=r["accuracy"],
            utility=r["utility"], correct=r["correct"], scored=r["scored"], errors=r["errors"],
            latency_mean=r["latency_mean"], item_ids=json.loads(r["item_ids_json"]), meta=meta,
            eval_seconds=r["eval_seconds"], created=r["created"], candidate=candidate,
        )

    def item_results(self, trial_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM item_results WHERE trial_id = ? ORDER BY rowid", (trial_id,))
        out = []
        for r in rows:
            d = dict(r)
            d["correct"] = bool(d["correct"])
            d["trace"] = json.loads(d.pop("trace_json"))
            out.append(d)
        return out

    # ----- optimizer state -----------------------------------------------------------------
    def save_state(self, iteration: int, state: dict[str, Any]) -> None:
        """The optimizer's state after the tell of `iteration` (the last one is what resume loads)."""
        self._write("INSERT INTO optimizer_state(iteration, state_json, created) VALUES (?,?,?)",
                    (iteration, _json(state), time.time()))

    def save_iteration(self, iteration: int, state: dict[str, Any], agent_entries: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
        """The end of one iteration in one transaction: the agent exchanges it made (dicts with
        kind, messages, reply, seconds, ok, error; other keys go to meta) and the optimizer state."""
        try:
            self._write("BEGIN IMMEDIATE")
            for e in agent_entries:
                meta = {k: v for k, v in e.items() if k not in ("kind", "messages", "reply", "seconds", "ok", "error",
                                                                "iteration")}
                self.log_agent(int(e.get("iteration", iteration)), str(e.get("kind", "agent")), e.get("messages", []),
                               e.get("reply"), float(e.get("seconds") or 0.0), bool(e.get("ok", True)), e.get("error"),
                               meta)
            self.save_state(iteration, state)
            self._write("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def load_state(self) -> tuple[int, dict[str, Any]] | None:
        """(iteration, state) of the latest saved state, or None before the first tell."""
        row = self.db.execute("SELECT iteration, state_json FROM optimizer_state ORDER BY id DESC LIMIT 1").fetchone()
        return (int(row["iteration"]), json.loads(row["state_json"])) if row else None

    # ----- agent transcripts ---------------------------------------------------------------
    def log_agent(self, iteration: int, kind: str, prompt: Any, reply: str | None, seconds: float = 0.0,
                  ok: bool = True, error: str | None = None, meta: dict[str, Any] | None = None) -> None:
        self._write("INSERT INTO agent_log(iteration, kind, prompt_json, reply, seconds, ok, error, meta_json, created) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (iteration, kind, _json(prompt), reply, float(seconds), int(bool(ok)), error, _json(meta or {}),
                     time.time()))

    def agent_log(self) -> list[dict[str, Any]]:
        out = []
        for r in self.db.execute("SELECT * FROM agent_log ORDER BY id"):
            d = dict(r)
            d["ok"] = bool(d["ok"])
            d["prompt"] = json.loads(d.pop("prompt_json"))
            d["meta"] = json.loads(d.pop("meta_json"))
            out.append(d)
        return out

    # ----- test scores ---------------------------------------------------------------------
    def set_test_result(self, graph_hash: str, split: str, summary: Any) -> None:
        self._write("INSERT OR REPLACE INTO test_results(graph_hash, split, summary_json, created) VALUES (?,?,?,?)",
                    (graph_hash, split, _json(summary), time.time()))

    def test_result(self, graph_hash: str, split: str = "test") -> dict[str, Any] | None:
        row = self.db.execute("SELECT summary_json FROM test_results WHERE graph_hash = ? AND split = ?",
                              (graph_hash, split)).fetchone()
        return json.loads(row["summary_json"]) if row else None

    def test_results(self) -> list[dict[str, Any]]:
        return [{"graph_hash": r["graph_hash"], "split": r["split"], "summary": json.loads(r["summary_json"])}
                for r in self.db.execute("SELECT * FROM test_results ORDER BY created")]


def _meta_candidate(meta: dict[str, Any]) -> bool:
    """Where stores of schema 1 kept the flag: the proposal meta's `candidate` key."""
    return meta.get("candidate", True) is not False


def _opt(x: Any) -> float | None:
    return None if x is None else float(x)


__all__ = ["RunStore", "StoreError", "TrialRecord", "SCHEMA_VERSION"]
