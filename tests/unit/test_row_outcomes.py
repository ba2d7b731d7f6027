"""A chunk's rows item: outcomes read back as written, line numbers kept as ranges, and the item far below
DynamoDB's 400 KB whatever the file's layout."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from label_importer.model.jobs import RowOutcome, RowStatus
from label_importer.store.row_outcomes import OUTCOME, WAITING, chunk_rows, encoded

ITEM_LIMIT = 400 * 1024


@given(
    lines=st.lists(st.integers(min_value=1, max_value=10**7), min_size=1, max_size=300, unique=True),
    status=st.sampled_from([RowStatus.IMPORTED, RowStatus.FAILED, RowStatus.SKIPPED, RowStatus.ROLLED_BACK]),
    reason=st.none() | st.text(min_size=1, max_size=50),
    actions=st.lists(st.sampled_from(["priority", "complete", "reopen"]), unique=True).map(tuple),
)
def test_an_outcome_reads_back_as_written(
    lines: list[int], status: RowStatus, reason: str | None, actions: tuple[str, ...]
) -> None:
    row = RowOutcome("unit", status, sorted(lines), reason=reason, labels_added=3, labels_removed=1, actions=actions)
    item = {"pk": "JOB#j", "sk": "ROWS#000000", OUTCOME + "unit": encoded(row, attempts=2, chunk_rows=1)}
    outcomes, waiting = chunk_rows(item)
    assert outcomes == {"unit": RowOutcome("unit", status, sorted(lines), reason, 3, 1, 2, actions)}
    assert waiting == {}


def test_contiguous_lines_are_one_range_and_an_outcome_wins_over_waiting() -> None:
    row = RowOutcome("unit", RowStatus.IMPORTED, [*range(1, 10_001), 20_000])
    value = encoded(row, attempts=1, chunk_rows=100)
    assert orjson.loads(value)["lines"] == [[1, 10_000], 20_000]
    waiting = encoded(RowOutcome("unit", RowStatus.RETRYING, [1], reason="503"), attempts=1, chunk_rows=100)
    assert chunk_rows({OUTCOME + "unit": value, WAITING + "unit": waiting})[1] == {}


def test_a_chunk_of_interleaved_rows_stays_far_below_the_item_limit() -> None:
    """1000 rows (the largest bundle), each with lines every 1000th line of a million-line file (no two adjacent,
    so no ranges to merge) and a reason of 10,000 characters: the item is under DynamoDB's limit, and a row keeps
    the beginning of its lines and its reason."""
    rows = 1000
    size = sum(
        len(OUTCOME)
        + 40
        + len(
            encoded(
                RowOutcome(f"{i:040d}", RowStatus.FAILED, list(range(i + 1, 1_000_000, rows)), reason="x" * 10_000),
                attempts=5,
                chunk_rows=rows,
            )
        )
        for i in range(rows)
    )
    assert size < ITEM_LIMIT
    kept = orjson.loads(
        encoded(RowOutcome("u", RowStatus.FAILED, [1, 3], reason="y" * 10_000), attempts=1, chunk_rows=rows)
    )
    assert kept["lines"] == [1, 3] and kept["reason"].startswith("yyy") and kept["reason"].endswith("…")
