"""End a child process when the process that started it ends, however it ends.

A child started by :mod:`multiprocessing` outlives a parent that is killed outright (SIGKILL,
the out-of-memory killer): a pool's worker waits for work for ever and a ``judge verify
--processes`` part goes on judging, making model calls nobody will merge. Its parent's end of
the start-up pipe is closed by the kernel when the parent ends; :func:`exit_with_parent` watches
it in a thread and ends the child then. What the child had in flight is what a killed process
leaves: its write-ahead call records, settled by the next run.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading

__all__ = ["exit_with_parent"]


def exit_with_parent(*, code: int = 1) -> bool:
    """In a :mod:`multiprocessing` child: exit with ``code`` as soon as the parent ends.

    Returns whether there is a parent to watch (``False`` in a process not started by
    :mod:`multiprocessing`, where nothing is done).
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return False
    sentinel = parent.sentinel

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])
        os._exit(code)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
    return True
