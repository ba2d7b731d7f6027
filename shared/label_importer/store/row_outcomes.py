"""How a chunk's row outcomes are kept: one item per chunk, one attribute per row, so that recording a chunk's
100 rows is one item of a transaction instead of 100 (and its DynamoDB write is a few KB rather than 100 items).

  pk = JOB#<job id>, sk = ROWS#<chunk index:06d>
      o#<data hash>    the row's outcome, once (IMPORTED, FAILED, SKIPPED or ROLLED_BACK)
      w#<data hash>    why the row waits (RETRYING: attempts so far, the error it last met); an outcome wins
      expires_at

Each value is the row as compact JSON (`lines` as ranges: `[[1, 40], 57]` is lines 1 to 40 and 57), which
botocore sends as one string instead of a nested map. Older versions kept an item per row
(`sk = ROW#<data hash>`); `decoded_rows` reads both, so a finished job's report and rollback keep working.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from label_importer.model.jobs import RowOutcome, RowStatus

ROWS_SK_PREFIX = "ROWS#"
OUTCOME = "o#"
WAITING = "w#"
LINES_KEPT_PER_CHUNK = 10_000
REASON_CHARACTERS_PER_CHUNK = 100_000
"""Line numbers or ranges, and characters of reasons, kept over a chunk's rows (shared out evenly), so that its
item stays below DynamoDB's 400 KB whatever the file's layout and Encord's messages: a row with more lines keeps
its first ones (its data hash names it in the report all the same), a longer reason its beginning."""
_SHORTEST_REASON = 80


def rows_key(job_id: str, chunk_index: int) -> dict[str, str]:
    return {"pk": f"JOB#{job_id}", "sk": f"{ROWS_SK_PREFIX}{chunk_index:06d}"}


def _ranges(lines: Iterable[int]) -> Iterator[int | list[int]]:
    run: list[int] = []
    for line in sorted(lines):
        if run and line == run[-1] + 1:
            run[1:] = [line]
            continue
        if run:
            yield run[0] if len(run) == 1 else run
        run = [line]
    if run:
        yield run[0] if len(run) == 1 else run


def _lines(ranges: list[Any]) -> list[int]:
    return [line for one in ranges for line in ([one] if isinstance(one, int) else range(one[0], one[1] + 1))]


def encoded(outcome: RowOutcome, *, attempts: int, chunk_rows: int) -> str:
    """The row's value, with its share of what a chunk of `chunk_rows` rows keeps."""
    rows = max(1, chunk_rows)
    value: dict[str, Any] = {
        "status": str(outcome.status),
        "lines": list(_ranges(outcome.lines))[: max(1, LINES_KEPT_PER_CHUNK // rows)],
        "attempts": attempts,
    }
    if outcome.reason:
        kept = max(_SHORTEST_REASON, REASON_CHARACTERS_PER_CHUNK // rows)
        value["reason"] = outcome.reason if len(outcome.reason) <= kept else outcome.reason[: kept - 1] + "…"
    if outcome.labels_added:
        value["labels_added"] = outcome.labels_added
    if outcome.labels_removed:
        value["labels_removed"] = outcome.labels_removed
    if outcome.actions:
        value["actions"] = list(outcome.actions)
    return orjson.dumps(value).decode()


def _decoded(data_hash: str, value: str) -> RowOutcome:
    row = orjson.loads(value)
    return RowOutcome(
        data_hash=data_hash,
        status=RowStatus(row["status"]),
        lines=_lines(row["lines"]),
        reason=row.get("reason"),
        labels_added=row.get("labels_added", 0),
        labels_removed=row.get("labels_removed", 0),
        attempts=row.get("attempts", 0),
        actions=tuple(row.get("actions", ())),
    )


def chunk_rows(item: dict[str, Any]) -> tuple[dict[str, RowOutcome], dict[str, RowOutcome]]:
    """A chunk's recorded outcomes, and its rows waiting (RETRYING) that have none yet, by data hash."""
    outcomes: dict[str, RowOutcome] = {}
    waiting: dict[str, RowOutcome] = {}
    for name, value in item.items():
        if name.startswith(OUTCOME):
            outcomes[name.removeprefix(OUTCOME)] = _decoded(name.removeprefix(OUTCOME), value)
        elif name.startswith(WAITING):
            waiting[name.removeprefix(WAITING)] = _decoded(name.removeprefix(WAITING), value)
    return outcomes, {data_hash: row for data_hash, row in waiting.items() if data_hash not in outcomes}


def decoded_rows(item: dict[str, Any]) -> list[RowOutcome]:
    """Every row an item of the job's partition holds: a chunk's rows item, or an older version's row item."""
    if item["sk"].startswith(ROWS_SK_PREFIX):
        outcomes, waiting = chunk_rows(item)
        return [*outcomes.values(), *waiting.values()]
    return [
        RowOutcome(
            data_hash=item["sk"].removeprefix("ROW#"),
            status=RowStatus(item["status"]),
            lines=[int(line) for line in item["lines"]],
            reason=item.get("reason") or item.get("last_error"),
            labels_added=int(item.get("labels_added", 0)),
            labels_removed=int(item.get("labels_removed", 0)),
            attempts=int(item.get("attempts", 0)),
            actions=tuple(item.get("actions", ())),
        )
    ]
