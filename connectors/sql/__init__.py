"""The sql connector: a CRM kept in the user's own database tables (PostgreSQL,
MySQL/MariaDB, SQLite; any SQLAlchemy URL). See docs/connectors/sql.md."""

from connectors.sql._connector import SqlConnector
from connectors.sql._settings import SqlSettings, TableSettings, TablesSettings

__all__ = ["SqlConnector", "SqlSettings", "TableSettings", "TablesSettings"]
