"""Where every key of a loaded spec came from (file, line, column). Owns no YAML parsing."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import KeyPath, Problem


@dataclass(frozen=True)
class Location:
    file: str
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class SourceMap:
    """Maps a key path to the location of its key (for mappings) or value (for list items).

    ``locate`` falls back to the nearest known ancestor so that every problem has a position.
    """

    entries: dict[KeyPath, Location] = field(default_factory=dict)
    value_entries: dict[KeyPath, Location] = field(default_factory=dict)

    def add(self, path: KeyPath, location: Location, value_location: Location | None = None) -> None:
        self.entries[path] = location
        if value_location is not None:
            self.value_entries[path] = value_location

    def locate(self, path: KeyPath, *, value: bool = False) -> Location | None:
        probe = tuple(path)
        while True:
            if value and probe in self.value_entries:
                return self.value_entries[probe]
            if probe in self.entries:
                return self.entries[probe]
            if not probe:
                return None
            probe = probe[:-1]

    def problem(self, path: KeyPath, message: str, hint: str | None = None, *, value: bool = False) -> Problem:
        """A Problem positioned at ``path`` (or its nearest located ancestor)."""
        loc = self.locate(path, value=value)
        if loc is None:
            return Problem("", 0, 0, tuple(path), message, hint)
        return Problem(loc.file, loc.line, loc.column, tuple(path), message, hint)
