"""Connecting to the ledger database (SQLite or PostgreSQL), and transactions.

Migrating it is :mod:`ledger.schema`.

SQLite is the zero set-up default (a file, created with its folder on first use); PostgreSQL is
for production (several API processes and workers). Every failure to reach the database becomes
a :class:`LedgerDatabaseError` whose message says what is wrong and how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine
    from sqlmodel import Session

SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 10

_URL_HELP = (
    "use sqlite:///path/to/ledger.db (a file, created on first use) or "
    "postgresql+psycopg://user:password@host:5432/dbname"
)
_PG_START_HELP = (
    "is the server running? On Debian/Ubuntu start it with: pg_ctlcluster 15 main start "
    "(pg_lsclusters lists the clusters)"
)
_READONLY = "ledger_readonly"


class LedgerDatabaseError(RuntimeError):
    """The ledger database cannot be used; the message names the problem and the fix."""


T = TypeVar("T")


def parse_url(url: str) -> URL:
    """Parse and normalise a ledger URL.

    ``postgresql://`` and ``postgres://`` select psycopg 3 (the driver outcome-judge ships with).

    >>> parse_url("postgres://u:secret@db:5432/ledger").render_as_string(hide_password=True)
    'postgresql+psycopg://u:***@db:5432/ledger'
    >>> parse_url("sqlite:///out/ledger.db").database
    'out/ledger.db'
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not isinstance(url, str) or not url.strip():
        raise LedgerDatabaseError(f"the database URL is empty: {_URL_HELP}")
    try:
        parsed = make_url(url.strip())
    except ArgumentError as exc:
        raise LedgerDatabaseError(f"malformed database URL {url!r}: {exc}; {_URL_HELP}") from None
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise LedgerDatabaseError(
            f"unsupported database {backend!r} in URL {_safe(parsed)}: outcome-judge stores its "
            f"ledger in SQLite or PostgreSQL; {_URL_HELP}"
        )
    return parsed


def make_engine(url: str, *, check: bool = True, echo: bool = False) -> Engine:
    """Create the SQLAlchemy engine for a ledger URL.

    Parameters
    ----------
    url
        ``sqlite:///relative/or/absolute.db``, ``sqlite://`` (in memory, one connection, tests
        only) or ``postgresql+psycopg://user:password@host:port/dbname``.
    check
        Connect once now, so a wrong URL, a missing driver or an unreachable server fails here
        with a clear message rather than at the first query.
    echo
        Log every SQL statement (debugging).

    Returns
    -------
    Engine
        SQLite engines run in WAL mode with foreign keys on, a 30 s busy timeout and
        ``BEGIN IMMEDIATE`` write transactions (so concurrent writers queue instead of failing);
        the folder of a SQLite file is created if missing.

    Raises
    ------
    LedgerDatabaseError
        The URL is malformed, its driver is not installed, or the database cannot be reached.

    Examples
    --------
    >>> engine = make_engine("sqlite://")
    >>> engine.dialect.name
    'sqlite'
    """
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(parsed, echo=echo)
    else:
        engine = _postgres_engine(parsed, echo=echo)
    if check:
        try:
            with engine.connect():
                pass
        except Exception as exc:
            engine.dispose()
            raise connection_error(exc, parsed) from None
    return engine


def _create(parsed: URL, **kwargs: Any) -> Engine:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import NoSuchModuleError

    try:
        return create_engine(parsed, **kwargs)
    except (ModuleNotFoundError, ImportError, NoSuchModuleError) as exc:
        raise LedgerDatabaseError(
            f"the database driver for {parsed.drivername!r} is not installed ({exc}); "
            f"outcome-judge ships psycopg 3 for PostgreSQL: {_URL_HELP}"
        ) from None


def _set_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, waiting out another connection that is writing to the file.

    Switching to WAL needs the file to itself, and SQLite answers BUSY at once, not through the
    busy timeout, while another connection holds a write lock: several processes opening one
    new ledger together lost one about once in 90 starts. Retried for as long as the busy
    timeout allows, then the error is raised as before.
    """
    import sqlite3
    import time

    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_engine(parsed: URL, *, echo: bool) -> Engine:
    from sqlalchemy import event
    from sqlalchemy.pool import StaticPool

    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    kwargs: dict[str, Any] = {"echo": echo}
    if in_memory:
        # One shared connection, or every connection would see its own empty database.
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        path = Path(database).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerDatabaseError(
                f"cannot create the folder {path.parent} for the SQLite ledger {path}: {exc}; "
                "choose a writable path in the URL (sqlite:///path/to/ledger.db)"
            ) from None
        parsed = parsed.set(database=str(path))
        kwargs["connect_args"] = {
            "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
            "check_same_thread": False,
        }
    engine = _create(parsed, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not open transactions on its own: we emit BEGIN in _on_begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if not in_memory:
                _set_wal(cursor)
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: a read-then-write transaction can never fail
        # half-way with SQLITE_BUSY; concurrent writers wait (busy_timeout) instead.
        readonly = connection.get_execution_options().get(_READONLY, False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(parsed: URL, *, echo: bool) -> Engine:
    from config.settings import get_settings

    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    # Each process holds at most pool_size + max_overflow connections: what the connection
    # budget of several processes against one server is made of (docs/scaling.md).
    settings = get_settings()
    return _create(
        parsed,
        echo=echo,
        pool_pre_ping=True,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        connect_args=connect_args,
    )


def _safe(parsed: URL) -> str:
    return parsed.render_as_string(hide_password=True)


def connection_error(exc: BaseException, parsed: URL) -> LedgerDatabaseError:
    """Turn a driver's connection failure into an error that says how to fix it."""
    if isinstance(exc, LedgerDatabaseError):
        return exc
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if parsed.get_backend_name() == "sqlite":
        return LedgerDatabaseError(
            f"cannot open the SQLite ledger {parsed.database!r}: {first}; check that the path "
            "is a writable file (not a folder) or choose another with sqlite:///path/to/ledger.db"
        )
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        fix = f"check the user and password in the URL {_safe(parsed)}"
    elif "does not exist" in lowered and "database" in lowered:
        fix = f"create the database: su postgres -c \"psql -c 'CREATE DATABASE {parsed.database}'\""
    elif "role" in lowered and "does not exist" in lowered:
        fix = f"create the user {parsed.username!r} or use another one in the URL"
    else:
        fix = _PG_START_HELP
    return LedgerDatabaseError(f"cannot connect to PostgreSQL at {where} ({first}); {fix}")


def _is_connect_failure(exc: BaseException) -> bool:
    from sqlalchemy.exc import OperationalError

    return isinstance(exc, OperationalError) and "connect" in str(exc).lower()


#: Ids per ``IN`` list (or rows per multi-row statement) when a set is read or written in
#: parts: far below every driver's parameter limit, and short statements to parse.
IN_LIST_SIZE = 500


def chunked(values: Sequence[T], size: int = IN_LIST_SIZE) -> Iterator[list[T]]:
    """``values`` in consecutive lists of at most ``size``, in order.

    >>> list(chunked(["a", "b", "c"], 2))
    [['a', 'b'], ['c']]
    """
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def among(conn: Connection, column: Any, ids: list[str]) -> Any:
    """``column IN ids``; one array parameter on PostgreSQL, where psycopg would otherwise parse
    a statement of 500 placeholders on every call (more than the look-up itself costs)."""
    if conn.dialect.name == "postgresql":
        import sqlalchemy as sa
        from sqlalchemy.dialects import postgresql

        return column == sa.any_(sa.literal(ids, postgresql.ARRAY(sa.String)))
    return column.in_(ids)


def insert_for(dialect: str, table: Any) -> Any:
    """The dialect's INSERT (both have ON CONFLICT; SQLAlchemy spells it per dialect)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


@contextmanager
def session(engine: Engine, *, readonly: bool = False) -> Iterator[Session]:
    """A session whose work commits as one transaction, or rolls back entirely on any error.

    ``readonly=True`` never commits and, on SQLite, does not take the write lock.

    >>> from sqlalchemy import text
    >>> with session(make_engine("sqlite://")) as s:
    ...     s.exec(text("SELECT 1")).scalar_one()
    1
    """
    from sqlmodel import Session

    bind = engine.execution_options(**{_READONLY: True}) if readonly else engine
    with Session(bind, expire_on_commit=False) as db:
        try:
            yield db
        except BaseException:
            db.rollback()
            raise
        if not readonly:
            db.commit()
        # readonly: closing the session ends the transaction; the rows read stay loaded (a
        # rollback would expire them)
