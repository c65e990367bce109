"""The raw-connection transactions of the answer path (study.db.raw_transaction), on SQLite and
PostgreSQL: Core statements compiled once per dialect, commit on success, rollback on error."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, insert, select, update

from study import models as m
from study.db import make_engine, raw_transaction, transaction

_S_META = select(m.meta.c.key, m.meta.c.value).where(m.meta.c.key == bindparam("k"))
_U_META = update(m.meta).where(m.meta.c.key == bindparam("k")).values(value=bindparam("v"))


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
    with pytest.raises(RuntimeError, match="boom"):
        with raw_transaction(engine, write=True) as conn:
            conn.execute(insert(m.meta), {"key": "x", "value": "1"})
            raise RuntimeError("boom")
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        with raw_transaction(engine, write=True) as conn:
            conn.execute(insert(m.meta), {"key": "y", "value": "1"})
            conn.execute(insert(m.meta), {"key": "y", "value": "2"})  # violates the key
    with raw_transaction(engine) as conn:
        assert conn.execute(select(m.meta.c.key)).all() == []
    # the pool still works after the failures (connections were rolled back and returned)
    with raw_transaction(engine, write=True) as conn:
        conn.execute(insert(m.meta), {"key": "z", "value": "1"})
    with transaction(engine) as conn:
        assert conn.execute(select(m.meta.c.key)).scalars().all() == ["z"]
