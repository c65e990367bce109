"""The raw-connection transactions of the answer path (study.raw.raw_transaction), on SQLite and
PostgreSQL: Core statements compiled once per dialect, commit on success, rollback on error,
deferred writes, and on PostgreSQL prepared statements and recovery from dead connections."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, create_engine, func, insert, select, text, update
from sqlalchemy.pool import NullPool

from study import models as m
from study.db import make_engine, transaction
from study.raw import raw_transaction

_S_META = select(m.meta.c.key, m.meta.c.value).where(m.meta.c.key == bindparam("k"))
_U_META = update(m.meta).where(m.meta.c.key == bindparam("k")).values(value=bindparam("v"))
_S_PREPARED = select(text("name")).select_from(text("pg_prepared_statements"))


@pytest.fixture
def engine(database):
    eng = make_engine(database)
    m.metadata.create_all(eng)
    yield eng
    eng.dispose()


def test_rows_commit_and_the_sqlalchemy_view_agree(engine):
    with raw_transaction(engine, write=True) as conn:
        res = conn.execute(insert(m.meta), {"key": "a", "value": "1"})
        assert res.rowcount == 1
        conn.execute(insert(m.meta), {"key": "b", "value": "2"})
        assert conn.execute(_U_META, {"k": "b", "v": "3"}).rowcount == 1
    with raw_transaction(engine) as conn:
        row = conn.execute(_S_META, {"k": "b"}).one()
        assert (row.key, row.value) == ("b", "3")
        assert row._asdict() == {"key": "b", "value": "3"}
        assert conn.execute(_S_META, {"k": "zz"}).first() is None
        with pytest.raises(LookupError, match="expected one row, got 0"):
            conn.execute(_S_META, {"k": "zz"}).one()
        assert conn.execute(select(m.meta.c.value).where(m.meta.c.key == "a")).scalar_one() == "1"
    with transaction(engine) as conn:  # the same rows through SQLAlchemy
        assert dict(conn.execute(select(m.meta.c.key, m.meta.c.value)).all()) == {
            "a": "1",
            "b": "3",
        }


def test_an_error_rolls_back_everything_and_returns_the_connection(engine):
    with pytest.raises(RuntimeError, match="boom"), raw_transaction(engine, write=True) as conn:
        conn.execute(insert(m.meta), {"key": "x", "value": "1"})
        raise RuntimeError("boom")
    unique = pytest.raises(Exception, match="(?i)unique|duplicate")
    with unique, raw_transaction(engine, write=True) as conn:
        conn.execute(insert(m.meta), {"key": "y", "value": "1"})
        conn.execute(insert(m.meta), {"key": "y", "value": "2"})  # violates the key
    with raw_transaction(engine) as conn:
        assert conn.execute(select(m.meta.c.key)).all() == []
    # the pool still works after the failures (connections were rolled back and returned)
    with raw_transaction(engine, write=True) as conn:
        conn.execute(insert(m.meta), {"key": "z", "value": "1"})
    with transaction(engine) as conn:
        assert conn.execute(select(m.meta.c.key)).scalars().all() == ["z"]


def test_deferred_writes_run_at_commit_in_order(engine):
    with raw_transaction(engine, write=True) as conn:
        conn.defer(insert(m.meta), {"key": "a", "value": "1"})
        conn.defer(_U_META, {"k": "a", "v": "2"})  # runs after the insert
        assert conn.execute(_S_META, {"k": "a"}).first() is None  # not yet
    with raw_transaction(engine) as conn:
        assert conn.execute(_S_META, {"k": "a"}).one().value == "2"
        with pytest.raises(RuntimeError, match="write transaction"):
            conn.defer(_U_META, {"k": "a", "v": "3"})


def test_a_deferred_write_that_fails_rolls_back_the_whole_transaction(engine):
    with raw_transaction(engine, write=True) as conn:
        conn.execute(insert(m.meta), {"key": "a", "value": "1"})
    integrity = engine.dialect.loaded_dbapi.IntegrityError
    with pytest.raises(integrity), raw_transaction(engine, write=True) as conn:
        conn.execute(_U_META, {"k": "a", "v": "changed"})  # sent at once
        conn.defer(insert(m.meta), {"key": "b", "value": "1"})
        conn.defer(insert(m.meta), {"key": "a", "value": "dup"})  # fails at commit
    with transaction(engine) as conn:
        assert dict(conn.execute(select(m.meta.c.key, m.meta.c.value)).all()) == {"a": "1"}
    with pytest.raises(integrity), raw_transaction(engine, write=True) as conn:
        conn.defer(insert(m.meta), {"key": "a", "value": "dup"})  # only deferred writes
    with raw_transaction(engine, write=True) as conn:  # the pool is healthy afterwards
        conn.defer(insert(m.meta), {"key": "c", "value": "1"})
    with transaction(engine) as conn:
        assert conn.execute(select(func.count()).select_from(m.meta)).scalar_one() == 2


@pytest.fixture
def pg_engine(h):
    eng = make_engine(h.postgres_url())
    m.metadata.drop_all(eng)
    m.metadata.create_all(eng)
    yield eng
    eng.dispose()


@pytest.mark.postgres
def test_postgres_statements_are_prepared_once_per_connection(pg_engine):
    engine = pg_engine
    for v in ("1", "2", "3"):
        with raw_transaction(engine, write=True) as conn:
            if v == "1":
                conn.execute(insert(m.meta), {"key": "a", "value": v})
            else:
                conn.execute(_U_META, {"k": "a", "v": v})
            names = conn.execute(_S_PREPARED).all()
    # one server-side statement per Core statement used on this connection, never re-prepared
    assert sorted(n for (n,) in names if n.startswith("mdf_study_")) == sorted(conn._prepared)
    assert len(conn._prepared) == 3  # insert, update, and the pg_prepared_statements query
    prepared = conn._prepared
    # a failed transaction (BEGIN sent with the failing writes) is rolled back and the
    # connection pooled again, not discarded: its prepared statements are still there
    integrity = engine.dialect.loaded_dbapi.IntegrityError
    with pytest.raises(integrity), raw_transaction(engine, write=True) as conn:
        conn.defer(insert(m.meta), {"key": "a", "value": "dup"})
    with raw_transaction(engine) as conn:
        assert conn._prepared is prepared
        assert conn.execute(_S_META, {"k": "a"}).one().value == "3"
    with transaction(engine) as c:  # the SQLAlchemy path still works on the same pool
        assert c.execute(select(m.meta.c.value)).scalar_one() == "3"


@pytest.mark.postgres
def test_postgres_connections_killed_by_a_server_restart_are_replaced(pg_engine, caplog):
    """A dead pooled connection (server restart, idle timeout) costs no request: the raw path
    reconnects before its first statement, the SQLAlchemy path pings at checkout."""
    engine = pg_engine
    with raw_transaction(engine, write=True) as conn:
        conn.execute(insert(m.meta), {"key": "a", "value": "1"})
    with transaction(engine) as c:
        c.execute(select(m.meta.c.value)).all()

    def kill_pool():
        other = create_engine(engine.url, poolclass=NullPool)
        with other.connect() as c:
            killed = c.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        other.dispose()
        assert killed >= 1

    kill_pool()
    logged = caplog.at_level("WARNING", logger="study.raw")
    with logged, raw_transaction(engine, write=True) as conn:
        conn.execute(_U_META, {"k": "a", "v": "2"})
    assert "database connection lost" in caplog.text  # it was dead, and was replaced
    kill_pool()
    with raw_transaction(engine) as conn:
        assert conn.execute(_S_META, {"k": "a"}).one().value == "2"
    kill_pool()
    with transaction(engine) as c:
        assert c.execute(select(m.meta.c.value)).scalar_one() == "2"


def _child_reads(engine, queue):
    fresh = engine.pool.checkedin() == 0  # the inherited connections were dropped
    with raw_transaction(engine) as conn:
        queue.put((fresh, conn.execute(_S_META, {"k": "a"}).one().value))


def test_a_forked_child_opens_its_own_connections(engine):
    import multiprocessing

    with raw_transaction(engine, write=True) as conn:
        conn.execute(insert(m.meta), {"key": "a", "value": "1"})
    assert engine.pool.checkedin() >= 1
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_reads, args=(engine, queue))
    child.start()
    got = queue.get(timeout=30)
    child.join(30)
    assert child.exitcode == 0 and got == (True, "1")
    with raw_transaction(engine, write=True) as conn:  # the parent's pool still works
        conn.execute(_U_META, {"k": "a", "v": "2"})
        assert conn.execute(_S_META, {"k": "a"}).one().value == "2"
