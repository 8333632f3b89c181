"""The journal ``runs.jsonl``: one JSON record per finished run, appended as each run ends.

An interrupted write can leave only a cut-short last line (no newline at its
end); reading drops such a line from the file, with a warning on standard
error, so that its run is made again and the next record starts on a line of
its own. Any other line that is not a JSON record is an error naming the file
and the line.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def append_record(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append ``record`` to the journal at ``path`` as one line, on a line of its own.

    A last record whose write stopped just before its newline is complete
    JSON; the newline is then written first, so the two never share a line.
    """
    with open(path, "a+b") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell():
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
        handle.write((json.dumps(record, default=str) + "\n").encode())


def read_journal(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records written by :func:`append_record` to ``path``; empty when the file does not exist.

    Raises
    ------
    ValueError
        For a line other than a cut-short last one that is not a JSON record.
    """
    if not os.path.exists(path):
        return []
    with open(path, "rb") as handle:
        data = handle.read()
    lines = data.split(b"\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            if number == len(lines):
                _drop_cut_short_line(path, len(data) - len(line), number)
                break
            raise ValueError(
                f"{path}, line {number}: not a JSON record ({getattr(error, 'msg', error)}); delete that line "
                "to make its run again, or run without --resume to start afresh") from None
    return records


def _drop_cut_short_line(path: str | os.PathLike, keep: int, number: int) -> None:
    print(f"anomvae bench: {path}: dropped its last line ({number}), cut short by an interrupted write; "
          "its run will be made again", file=sys.stderr)
    with open(path, "rb+") as handle:
        handle.truncate(keep)
