"""State files for the sandboxes (`--state FILE`): a journal that survives `kill -9`.

The file holds one JSON line with a snapshot of the whole state, then one JSON line per change
since. Every change is written (and flushed to the operating system) before the request that made
it is answered, so a killed process loses nothing it acknowledged. After `compact_after` changes,
and on a clean stop, the file is rewritten as a fresh snapshot: written to a temporary file beside
it, fsynced and renamed over it, so the file on disk is always whole (a rename is atomic). A line
cut short by a kill in the middle of a write is the last one and is ignored when reading.
"""

import json
import os
from pathlib import Path


class Journal:
    """One state file: `read()` at start, `append()` per change, `rewrite()` to compact."""

    def __init__(self, path: str | Path, compact_after: int = 5000):
        self.path = Path(path)
        self.compact_after = compact_after
        self.pending = 0  # changes appended since the last snapshot
        self._file = None

    def read(self) -> tuple[dict | None, list[dict]]:
        """(snapshot, changes since) from the file; (None, []) when there is none yet."""
        if not self.path.exists():
            return None, []
        lines = self.path.read_bytes().split(b"\n")
        snapshot, records = None, []
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                if number >= len(lines) - 2:
                    break  # the last line, cut short by a kill
                raise ValueError(f"{self.path}: line {number + 1} is not JSON") from None
            if snapshot is None:
                snapshot = value
            else:
                records.append(value)
        return snapshot, records

    def read_as(self, fmt: str, what: str) -> tuple[dict, list[dict]] | None:
        """`read()` of a file whose snapshot is in format `fmt` (ValueError naming `what` if it is
        not); None when there is no file yet."""
        snapshot, records = self.read()
        if snapshot is None:
            return None
        if snapshot.get("format") != fmt:
            raise ValueError(f"{self.path} is not a sandbox {what} state file")
        return snapshot, records

    def append(self, record: dict) -> bool:
        """Write one change; True when it is time to compact (call `rewrite`)."""
        if self._file is None:
            self._file = open(self.path, "ab")
        self._file.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        self._file.flush()
        self.pending += 1
        return self.pending >= self.compact_after

    def rewrite(self, snapshot: dict) -> None:
        """Replace the file by one snapshot line, atomically."""
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with open(temporary, "wb") as out:
            out.write(json.dumps(snapshot, separators=(",", ":")).encode() + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self.pending = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class StateFile:
    """A sandbox's state kept in a `Journal`. A subclass names its `format` (and `what` it holds,
    for the error on a file of another format) and says how to take a snapshot (`snapshot_of`),
    restore one (`restore`) and replay a change written since (`replay`)."""

    format = ""
    what = ""

    def __init__(self, path, compact_after: int = 5000):
        self.journal = Journal(path, compact_after)

    def load(self, target) -> bool:
        """Fill an empty `target` from the file; False when there is no file yet."""
        found = self.journal.read_as(self.format, self.what)
        if found is None:
            return False
        snapshot, records = found
        self.restore(target, snapshot)
        for record in records:
            self.replay(target, record)
        self.snapshot(target)  # start a fresh journal
        return True

    def append(self, target, record: dict) -> None:
        if self.journal.append(record):
            self.snapshot(target)

    def snapshot(self, target) -> None:
        self.journal.rewrite({"format": self.format, **self.snapshot_of(target)})

    def close(self, target) -> None:
        self.snapshot(target)
        self.journal.close()

    def snapshot_of(self, target) -> dict:
        raise NotImplementedError

    def restore(self, target, snapshot: dict) -> None:
        raise NotImplementedError

    def replay(self, target, record: dict) -> None:
        raise NotImplementedError
