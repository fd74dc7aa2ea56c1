"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
import structlog
from hypothesis import settings as hypothesis_settings

# CI runs each property test on one fixed sequence of examples, so a submission is judged
# on its code and not on which random examples it drew; run locally, the examples stay
# random (and found failures are replayed from .hypothesis/) so new cases keep being found.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI") == "true":
    hypothesis_settings.load_profile("ci")

PG_URL = os.environ.get(
    "FLOWTLY_SYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards.

    Skips when the server is unreachable, except under ``CI=true``, where it must be there.
    """
    schema = f"test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as exc:
        engine.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but PostgreSQL at {PG_URL} is unreachable: {exc}")
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable (set CI=true to require it)")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """Each test starts from structlog's defaults: an in-process CLI run configures logging
    (a level filter among it) for the whole process, which would hide later tests' events."""
    yield
    structlog.reset_defaults()


_ONE_WORKER = (
    "tests/unit/test_store_lock.py",
    "tests/unit/test_store.py",
    "tests/integration/test_daemon_pg.py",
)
"""Files whose tests take PostgreSQL advisory locks: those are database-wide, not per
schema, so under pytest-xdist they all run on one worker (``--dist loadgroup``)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(_ONE_WORKER):
            item.add_marker(pytest.mark.xdist_group("postgres-locks"))


@pytest.fixture(autouse=True)
def _small_step_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans of more than a handful of steps go through the scratch file, as a large
    account's plans do, so every test of planning and applying covers that path too."""
    monkeypatch.setattr("sync.engine.step_spool.STEP_CHUNK", 3)
