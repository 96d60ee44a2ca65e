"""Failures of the server's own storage, said in a client's terms: a full disk, a data folder it may
not write, an unreadable job database. The line names no path (the server's log keeps the system's
words); FastAPI-free, so that a worker process says the same."""

from __future__ import annotations

import errno
import sqlite3

FULL = (errno.ENOSPC, errno.EDQUOT)
DENIED = (errno.EROFS, errno.EACCES, errno.EPERM)


def storage_fault(err: BaseException, what: str = "this request") -> str | None:
    """The line a client gets when ``err`` is a failure of the server's storage while it stored
    ``what``, or None when ``err`` is no such failure."""
    number = getattr(err, "errno", None)
    if number in FULL or (isinstance(err, sqlite3.OperationalError) and "full" in str(err)):
        return f"{what} could not be stored: the server's disk is full; try again later or tell its operator"
    if number in DENIED:
        return f"{what} could not be stored: the server may not write its data folder; tell its operator"
    if isinstance(err, sqlite3.DatabaseError):
        return "the server's job database is unreadable; tell its operator (docs/server.md: rebuilding the queue)"
    return None
