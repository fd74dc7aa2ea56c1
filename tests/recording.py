"""The vcrpy set-up every cassette test shares (the cassettes are in tests/cassettes/).

Normal runs replay only (``record_mode="none"``: a request no cassette holds fails the
test). ``FLOWTLY_SYNC_RECORD=1`` records them again, against the sandbox or a vendor fake.
Requests match on method, path, query and body, never host or port (a recording server
listens on a random port); the Authorization header is never recorded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import vcr

__all__ = ["CASSETTES", "RECORD", "REPLAY_URL", "recorder"]

CASSETTES = Path(__file__).resolve().parent / "cassettes"
RECORD = os.environ.get("FLOWTLY_SYNC_RECORD") == "1"
REPLAY_URL = "http://127.0.0.1:9"
"""Where a replaying client points: never contacted, every answer comes from a cassette."""


def recorder(**options: Any) -> vcr.VCR:
    """The shared recorder, with ``options`` (more filters) added to its settings."""
    return vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode="all" if RECORD else "none",
        match_on=["method", "path", "query", "body"],
        filter_headers=["authorization"],
        decode_compressed_response=True,
        **options,
    )
