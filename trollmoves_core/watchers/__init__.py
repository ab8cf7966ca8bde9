"""Directory watchers: report each new file once, when it is complete."""

from trollmoves_core.watchers.base import FileCallback, Watcher

__all__ = ["FileCallback", "Watcher"]
