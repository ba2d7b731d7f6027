"""A dry run's diff: what importing the validated file now would change on each data unit, without writing to Encord.

The file goes through pass 2 exactly as it would to be queued (`assemble_chunks`: the same chunks, the same rows
merged per data unit), and each chunk is read as the import function reads it, on the job's branch: one listing,
and one bundled get for the data units that have a label row there. Nothing is created, saved or leased, and no
chunk is queued. Each row's labels are then applied in memory with the import's own LabelBuilder, so the
prediction is the import's, hash for hash: what it would add, what is already there, where `append` would fail
the row with a conflict, what `replace` would take off, and how the row would end, in the words the import would
record.

A data unit the branch has no label row for is never initialised through the SDK, which would create the row:
the file's labels are applied to a stand-in instead, the empty row Encord would create, built from the listing.

The prediction is for an import uploaded now, after every upload so far: a row it makes is never superseded, and
`replace` keeps no label of a newer upload, as there is none.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from typing import Any, BinaryIO

import orjson
from encord.constants.enums import DataType
from encord.exceptions import AuthenticationError, AuthorisationError
from encord.objects import LabelRowV2

from label_importer.checks.ontology_resolver import OntologyResolver
from label_importer.checks.validation import FileIndex
from label_importer.encord_target.bundles import LabelRowBundles
from label_importer.encord_target.gateway import EncordKeyUnusable, is_transient, retried_with_a_rotated_key
from label_importer.encord_target.label_builder import ROW_ERRORS, LabelBuilder, RowConflict
from label_importer.model.dry_run import DiffTotals, DryRunDiff, LabelRef, UnitDiff
from label_importer.model.jobs import Job, RowStatus
from label_importer.model.label_format import AfterSave, Mode
from label_importer.model.messages import ChunkRow
from label_importer.model.problems import ErrorCode
from label_importer.model.source_items import SourceItem
from label_importer.model.upload_order import Upload
from label_importer.runtime.deadline import Deadline
from label_importer.runtime.world import World
from label_importer.services.chunking import ChunkPlan, assemble_chunks
from label_importer.services.import_chunk import NOT_IN_PROJECT, NOT_RETURNED, not_applied
from label_importer.sources.bounded_reading import WRAP_UP_SECONDS, OutOfTime

FIRST_ROWS_SHOWN = 20
"""Data units of the diff shown in report.json, summary.txt and by the CLI; diff.jsonl has them all."""


class DiffFailed(Exception):
    """The diff could not be made (Encord down, the key refused, time ran out): the job ends FAILED with `code`."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def diff_file(
    job: Job,
    items: Iterable[SourceItem],
    plan: ChunkPlan,
    index: FileIndex,
    world: World,
    deadline: Deadline,
    *,
    after_save: AfterSave | None = None,
) -> DryRunDiff:
    """Predict the import of the validated file chunk by chunk, write `diff.jsonl` (one line per data unit, in the
    order the chunks would be queued) and return the totals with the first data units. Raises DiffFailed."""
    # On disk, not in memory: a file of a million data units has a diff line for each, and the validator's memory
    # is sized for the chunks it holds open.
    with tempfile.TemporaryFile() as lines:
        differ = _Differ(job, world, deadline, len(index.lines_by_unit), lines)
        try:
            assemble_chunks(items, plan, index, differ.chunk, after_save=after_save)
        except OutOfTime:
            raise differ.out_of_time() from None
        lines.seek(0)
        world.reports.write_diff(job, lines)
    return DryRunDiff(differ.totals, differ.first)


class _Differ:
    def __init__(self, job: Job, world: World, deadline: Deadline, rows: int, lines: BinaryIO) -> None:
        self._project_hash = job.project_hash
        self._upload = Upload.of(job)
        self._world = world
        self._deadline = deadline
        self._rows = rows
        self.totals = DiffTotals()
        self.first: list[UnitDiff] = []
        self._lines = lines

    def chunk(self, chunk_index: int, rows: list[dict[str, Any]]) -> None:
        """Diff one chunk of rows, shaped as the queue would carry them."""
        # One more read may take an attempt's time, and the report must still be written after it.
        if self._deadline.remaining() < self._world.retry_policy.attempt_seconds + WRAP_UP_SECONDS:
            raise self.out_of_time()
        # From JSON, as the import function reads the queued chunk: the same rows, parsed the same way.
        chunk_rows = [ChunkRow.model_validate_json(orjson.dumps(row)) for row in rows]
        label_rows, builder = self._read([row.data_hash for row in chunk_rows])
        for row in chunk_rows:
            diff = _diff(row, label_rows.get(row.data_hash), builder, self._upload.mode)
            self.totals.count(diff)
            if len(self.first) < FIRST_ROWS_SHOWN:
                self.first.append(diff)
            self._lines.write(orjson.dumps(diff.to_dict()) + b"\n")

    def out_of_time(self) -> DiffFailed:
        return DiffFailed(
            ErrorCode.OUT_OF_TIME,
            f"the validator ran out of time for the dry run after diffing {self.totals.rows} of {self._rows} data "
            "units; split the file into smaller files (nothing was written to Encord)",
        )

    def _read(self, data_hashes: list[str]) -> tuple[dict[str, LabelRowV2], LabelBuilder]:
        """The chunk's label rows, read as the import reads them but creating none, with the retry policy of the
        validator's project read."""
        world = self._world

        def read() -> tuple[dict[str, LabelRowV2], LabelBuilder]:
            project = world.open_project(self._project_hash)
            bundles = LabelRowBundles(project, self._upload.branch, world.bundle_size, _never_saved)
            rows = bundles.read(data_hashes, create=False)
            return rows, LabelBuilder(OntologyResolver(project.ontology_structure))

        try:
            return world.retry_policy.call(lambda: retried_with_a_rotated_key(read, world.key_refused), self._deadline)
        except (AuthenticationError, AuthorisationError, EncordKeyUnusable) as error:
            raise DiffFailed(
                ErrorCode.ENCORD_KEY_UNUSABLE,
                f"Encord refused the key reading the label rows to diff ({type(error).__name__}): register its public "
                "key with an Encord user who can access the project",
            ) from None
        except Exception as error:
            if not is_transient(error):
                raise
            raise DiffFailed(
                ErrorCode.ENCORD_UNAVAILABLE,
                f"Encord did not answer reading the label rows to diff after retrying ({type(error).__name__}: "
                f"{error}); upload the file again later",
            ) from None


def _never_saved(data_hashes: list[str]) -> None:
    """The leases a save would renew: a dry run takes none, because it saves nothing."""
    raise AssertionError("a dry run saves no label rows")


def _diff(row: ChunkRow, label_row: LabelRowV2 | None, builder: LabelBuilder, mode: Mode) -> UnitDiff:
    """The row's labels applied to its label row as the import applies them: in memory only, as nothing saves it.
    `label_row` is None for a data unit the listing no longer has."""
    lines = row.lines
    if label_row is None:
        return UnitDiff(row.data_hash, None, lines, RowStatus.FAILED, NOT_IN_PROJECT)
    title = label_row.data_title
    if label_row.label_hash is None:
        label_row.from_labels_dict(_empty_label_row(label_row))
    elif not label_row.is_labelling_initialised:
        return UnitDiff(row.data_hash, title, lines, RowStatus.FAILED, NOT_RETURNED)
    before = _labels(label_row)
    try:
        own = builder.apply(label_row, row, mode)
    except RowConflict as conflict:
        return UnitDiff(row.data_hash, title, lines, RowStatus.FAILED, not_applied(conflict), conflict=[str(conflict)])
    except ROW_ERRORS as error:
        return UnitDiff(row.data_hash, title, lines, RowStatus.FAILED, not_applied(error))
    after = _labels(label_row)
    return UnitDiff(
        row.data_hash,
        title,
        lines,
        RowStatus.IMPORTED,
        add=[label for label_hash, label in after.items() if label_hash not in before],
        no_op=[label for label_hash, label in after.items() if label_hash in before and label_hash in own],
        remove=[label for label_hash, label in before.items() if label_hash not in after],
        workflow_actions=_workflow_actions(row.after_save),
    )


def _workflow_actions(after: AfterSave | None) -> list[str]:
    """The actions in the terms of the import's outcome, the priority with its value: `priority 0.8`, `complete`."""
    if after is None:
        return []
    return [f"priority {after.priority}" if kind == "priority" else kind for kind in after.kinds]


def _labels(label_row: LabelRowV2) -> dict[str, LabelRef]:
    """The row's label instances by hash, the same hashes `label_builder.label_hashes` gives."""
    labels = {
        instance.object_hash: LabelRef(instance.object_hash, "object", instance.ontology_item.title)
        for instance in label_row.get_object_instances()
    }
    for classification in label_row.get_classification_instances():
        label_hash = classification.classification_hash
        labels[label_hash] = LabelRef(label_hash, "classification", classification.ontology_item.title)
    return labels


def _empty_label_row(listed: LabelRowV2) -> dict[str, Any]:
    """The label row Encord would create for a listed data unit the branch has none for, with no labels: what
    `from_labels_dict` takes. Frames, size and data type come from the listing (an image group's images from
    `include_images_data`), which is what the builder and the SDK check labels against."""
    if listed.data_type == DataType.IMG_GROUP:
        data_units = {
            frame.image_hash: {
                "data_hash": frame.image_hash,
                "data_title": frame.title,
                "data_type": frame.file_type,
                "data_sequence": str(frame.frame_number),
                "width": frame.width,
                "height": frame.height,
                "labels": {"objects": [], "classifications": []},
            }
            for frame in listed.get_frames_metadata()
        }
    else:
        single_frame = listed.data_type == DataType.IMAGE
        data_units = {
            listed.data_hash: {
                "data_hash": listed.data_hash,
                "data_title": listed.data_title,
                "data_type": listed.file_type,
                "data_link": None,
                "data_sequence": 0,
                "width": listed.width,
                "height": listed.height,
                "labels": {"objects": [], "classifications": []} if single_frame else {},
            }
        }
    return {
        "label_hash": None,
        "branch_name": listed.branch_name,
        "created_at": None,
        "last_edited_at": None,
        "data_hash": listed.data_hash,
        "dataset_hash": listed.dataset_hash,
        "dataset_title": listed.dataset_title,
        "data_title": listed.data_title,
        "data_type": listed.data_type.value,
        "label_status": "NOT_LABELLED",
        "is_shadow_data": False,
        "data_units": data_units,
        "object_answers": {},
        "classification_answers": {},
        "object_actions": {},
    }
