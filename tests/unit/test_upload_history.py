"""The upload-order rule on its own: whatever order uploads reach a data unit in, it ends as if they had been
applied in upload order. A data unit is modelled as the set of its labels' hashes, changed exactly as the
importer changes it (a `replace` keeps only what the history says to keep, then adds its labels)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from label_importer.model.label_format import Mode
from label_importer.model.upload_order import UnitHistory, upload_order


@dataclass(frozen=True)
class Upload:
    job_id: str
    order: str
    mode: Mode
    labels: frozenset[str]


uploads = st.lists(
    st.tuples(st.sampled_from([Mode.APPEND, Mode.REPLACE]), st.frozensets(st.sampled_from("abcdefgh"), max_size=4)),
    min_size=1,
    max_size=6,
).map(
    lambda drawn: [
        Upload(f"job-{i}", upload_order(f"2026-12-02T00:00:00.{i:03d}Z", "", f"job-{i}"), mode, labels)
        for i, (mode, labels) in enumerate(drawn)
    ]
)


def sequential(initial: frozenset[str], applied: list[Upload]) -> set[str]:
    labels = set(initial)
    for upload in sorted(applied, key=lambda u: u.order):
        labels = set(upload.labels) if upload.mode is Mode.REPLACE else labels | upload.labels
    return labels


def as_arrived(initial: frozenset[str], arrived: list[Upload]) -> set[str]:
    labels, history = set(initial), UnitHistory()
    for upload in arrived:
        if history.superseded_by(upload.order) is not None:
            continue  # SKIPPED: a later replace already decided this data unit
        if upload.mode is Mode.REPLACE:
            labels &= history.newer_append_labels(upload.order)
        labels |= upload.labels
        history = UnitHistory.from_dict(
            history.with_applied(upload.job_id, upload.order, upload.mode, upload.labels).to_dict()
        )
    return labels


@given(uploads, st.randoms(use_true_random=False), st.frozensets(st.sampled_from("xyz")))
def test_any_arrival_order_ends_as_the_upload_order(
    applied: list[Upload], rng: random.Random, initial: frozenset[str]
) -> None:
    arrived = list(applied)
    rng.shuffle(arrived)
    assert as_arrived(initial, arrived) == sequential(initial, applied)


def test_the_sequencer_orders_two_uploads_of_the_same_millisecond_as_s3_says() -> None:
    """S3: compare sequencers right-padded with zeros; a longer one is not simply later."""
    same_time = "2026-12-02T00:00:00.000Z"
    assert upload_order(same_time, "0A1B", "z") < upload_order(same_time, "0A1C00", "a")
    assert upload_order(same_time, "0A1B2", "z") > upload_order(same_time, "0A1B", "a")
    assert upload_order("2026-12-02T00:00:00.001Z", "00", "a") > upload_order(same_time, "FF", "z")
