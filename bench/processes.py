"""A process and its descendants, read from /proc: the processes a benchmark charges or samples."""

from __future__ import annotations

from pathlib import Path


def child_pids(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` first, then every descendant of it."""
    tree = [pid]
    for child in child_pids(pid):
        tree += process_tree(child)
    return tree
