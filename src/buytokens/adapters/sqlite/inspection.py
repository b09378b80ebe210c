"""The embedded store's file as ``buytokens doctor`` finds it, read without changing it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from buytokens.adapters.sqlite.schema import SCHEMA_VERSION
from buytokens.ports.diagnostics import SqliteState


class SqliteStoreInspector:
    """``StoreInspector`` for the SQLite file at ``path``: opens it read-only, creates nothing."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)

    def inspect(self) -> SqliteState:
        """The file's existence, permissions and schema version."""
        path = self._path.absolute()
        directory = path.parent
        directory_exists = directory.is_dir()
        directory_writable = directory_exists and os.access(directory, os.W_OK | os.X_OK)
        if not path.exists():
            return SqliteState(
                str(path), False, directory_exists, directory_writable, None, SCHEMA_VERSION
            )
        writable = directory_writable and os.access(path, os.R_OK | os.W_OK)
        version, error = _schema_version(path)
        return SqliteState(
            str(path), True, directory_exists, writable, version, SCHEMA_VERSION, error
        )


def _schema_version(path: Path) -> tuple[int | None, str | None]:
    if path.is_dir():
        return None, "it is a directory"
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return None, str(exc)
    try:
        # Reading the schema proves that the file is an SQLite database at all.
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        return int(conn.execute("PRAGMA user_version").fetchone()[0]), None
    except sqlite3.Error as exc:
        return None, str(exc)
    finally:
        conn.close()
