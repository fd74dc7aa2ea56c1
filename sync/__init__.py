"""flowtly-sync: keep a CRM and a Flowtly account in step, in both directions."""

from sync.errors import ApiError, ConfigError, FlowtlyError, RecordError, SafetyError, SyncError
from sync.model import EntityKind, Record, Side

__all__ = [
    "ApiError",
    "ConfigError",
    "EntityKind",
    "FlowtlyError",
    "Record",
    "RecordError",
    "SafetyError",
    "Side",
    "SyncError",
]

__version__ = "0.1.0"
