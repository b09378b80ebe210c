"""The store ``buytokens doctor`` checks: the SQLite file, or LibreChat's MongoDB."""

from __future__ import annotations

from pathlib import PurePath

from buytokens.ports.diagnostics import MongoState, SqliteState
from buytokens.services.doctor.report import Finding, note, ok, problem, warning

LIBRECHAT_COLLECTIONS = ("users", "balances", "transactions")


def check_store(state: SqliteState | MongoState) -> list[Finding]:
    """The store as its inspector found it: the SQLite file, or LibreChat's MongoDB."""
    if isinstance(state, SqliteState):
        return [_sqlite(state)]
    return _mongo(state)


def _sqlite(state: SqliteState) -> Finding:
    subject = "store"
    path = state.path
    directory = str(PurePath(path).parent)
    if not state.exists:
        if not state.directory_exists:
            return problem(
                subject,
                f"the SQLite file {path} cannot be created: its directory {directory} does not "
                "exist; create it, or point BUYTOKENS_SQLITE_PATH elsewhere",
            )
        if not state.writable:
            return problem(
                subject,
                f"the SQLite file {path} cannot be created: this user may not write to "
                f"{directory}; fix the directory's owner or permissions, or point "
                "BUYTOKENS_SQLITE_PATH elsewhere",
            )
        return note(
            subject,
            f"the SQLite file {path} does not exist yet; buytokens creates it at first use "
            "(if you expected existing balances, BUYTOKENS_SQLITE_PATH points at the wrong file)",
        )
    if state.error is not None or state.schema_version is None:
        return problem(
            subject,
            f"{path} is not a readable SQLite database ({state.error or 'no schema'}): point "
            "BUYTOKENS_SQLITE_PATH at buytokens' database file, or move this file away",
        )
    if state.schema_version > state.current_version:
        return problem(
            subject,
            f"{path} has schema version {state.schema_version}, newer than this buytokens "
            f"understands ({state.current_version}): upgrade buytokens",
        )
    if not state.writable:
        return problem(
            subject,
            f"this user may not write {path} or its directory {directory} (which holds the "
            "-wal and -shm files): fix the owner or permissions",
        )
    if state.schema_version < state.current_version:
        return note(
            subject,
            f"{path} has schema version {state.schema_version}; buytokens migrates it to "
            f"{state.current_version} when it next opens it (back the file up first)",
        )
    return ok(subject, f"SQLite file {path}, schema version {state.schema_version} (current)")


def _mongo(state: MongoState) -> list[Finding]:
    subject = f"MongoDB {state.database}"
    if state.error is not None:
        return [
            problem(
                subject,
                f"cannot be read: {state.error}. Check MONGODB_URI (host, port, user name, "
                "password, database), that mongod is running, and that this machine may reach it",
            )
        ]
    found = [ok(subject, "reachable"), _collections(subject, state)]
    found.extend(
        problem(
            f"{subject} balances",
            f"{duplicate.describe()}; until then this user is credited nothing",
        )
        for duplicate in state.duplicates
    )
    if state.unique_user_index:
        found.append(ok(f"{subject} balances", "unique index on user: one balance per user"))
    elif not state.duplicates:
        if state.buytokens_indexes:
            found.append(
                problem(
                    f"{subject} balances",
                    "no unique index on user although buytokens has started on this database: "
                    "MongoDB before 5.0 refuses it beside LibreChat's own index on user; drop "
                    'that one (db.balances.dropIndex("user_1")) and restart buytokens, or '
                    "upgrade MongoDB",
                )
            )
        else:
            found.append(
                note(
                    f"{subject} balances",
                    "no unique index on user yet: buytokens creates it when it first starts "
                    "on this database",
                )
            )
    return found


def _collections(subject: str, state: MongoState) -> Finding:
    if "users" not in state.collections:
        return warning(
            subject,
            "has no users collection, where LibreChat keeps its users: is this LibreChat's "
            "database? Name LibreChat's database in MONGODB_URI's path (LibreChat's default "
            "is LibreChat), or credits land where LibreChat never looks",
        )
    missing = [name for name in LIBRECHAT_COLLECTIONS if name not in state.collections]
    if missing:
        return note(
            subject,
            f"LibreChat's users are here; {', '.join(missing)} does not exist yet and is "
            "created at the first credit",
        )
    return ok(subject, f"LibreChat's collections are here ({', '.join(LIBRECHAT_COLLECTIONS)})")
