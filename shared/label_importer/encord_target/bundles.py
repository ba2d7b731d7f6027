"""Label rows in bundles: read many with one listing and one bundled initialise, save many with one bundled save.

The one way import and rollback talk to Encord about labels. A bundled save Encord rejects is saved again row
by row, so one row Encord refuses fails alone and the rest land; transient faults and a lost lease are raised,
for the caller to repeat the whole attempt with freshly read rows. Requests are counted exactly, as sent
(failed ones too): a listing, one bundled initialise per kind of row in it (new rows are created, existing ones
fetched, in separate requests), and each bundled save.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from aws_lambda_powertools.metrics import MetricUnit
from encord import Project
from encord.objects import LabelRowV2

from label_importer.encord_target.gateway import is_transient
from label_importer.model.label_format import AfterSave
from label_importer.model.leases import LeaseLost
from label_importer.runtime.observability import ENCORD_REQUEST_LATENCY, logger, metrics


@contextmanager
def _timed_encord_call() -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics.add_metric(
            name=ENCORD_REQUEST_LATENCY, unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000
        )


class LabelRowBundles:
    def __init__(self, project: Project, branch: str, bundle_size: int, renew: Callable[[list[str]], None]) -> None:
        self._project = project
        self._branch = branch
        """Every row is read from (and, when new, created on) this branch; saving a row saves it where it was read."""
        self._bundle_size = bundle_size
        self._renew = renew
        """Renews the rows' leases, or raises LeaseLost: called just before every save."""
        self.requests = 0

    def read(self, data_hashes: list[str], *, create: bool = True) -> dict[str, LabelRowV2]:
        """The data units' label rows, initialised, by data hash. A data unit no longer in the project is absent;
        one Encord left out of its answer is present but not initialised (`is_labelling_initialised`), and must
        never be saved.

        With `create=False` (a dry run, which writes nothing) a data unit the branch has no label row for is left
        listed but not initialised, `label_hash` None: initialising it is what creates it. Rows are then listed
        with their images' sizes, which is what an image group's stand-in needs (dry_run_diff.py)."""
        self.requests += 1
        with _timed_encord_call():
            listed = self._project.list_label_rows_v2(
                data_hashes=data_hashes, branch_name=self._branch, include_images_data=not create
            )
        rows = {label_row.data_hash: label_row for label_row in listed}
        initialised = [label_row for label_row in rows.values() if create or label_row.label_hash is not None]
        self.requests += len({label_row.label_hash is None for label_row in initialised})
        with _timed_encord_call(), self._project.create_bundle(bundle_size=self._bundle_size) as bundle:
            for label_row in initialised:
                label_row.initialise_labels(bundle=bundle)
        return rows

    def save(self, label_rows: list[LabelRowV2]) -> dict[str, str]:
        """Save the rows; returns, by data hash, why Encord rejected those it rejected (the others are saved)."""
        if not label_rows:
            return {}
        try:
            self._save_bundle(label_rows)
        except LeaseLost:
            raise
        except Exception as error:
            if is_transient(error):
                raise
            if len(label_rows) == 1:
                return {label_rows[0].data_hash: f"Encord rejected the labels: {error}"}
            logger.warning("bundled save rejected; saving rows one by one", extra={"error": str(error)})
            return {data_hash: reason for row in label_rows for data_hash, reason in self.save([row]).items()}
        return {}

    def act(self, actions: list[tuple[LabelRowV2, AfterSave]]) -> str | None:
        """Apply each saved row's workflow actions, all in one bundle: one request per kind of action (priority,
        complete, reopen), whatever the number of rows. Returns why Encord refused them, or None; raises on a
        transient fault, for the caller to repeat the attempt (setting a priority or moving a task again is
        harmless)."""
        if not actions:
            return None
        self.requests += len({kind for _, after in actions for kind in after.kinds})
        try:
            with _timed_encord_call(), self._project.create_bundle(bundle_size=self._bundle_size) as bundle:
                for label_row, after in actions:
                    if after.priority is not None:
                        label_row.set_priority(after.priority, bundle=bundle)
                    if after.move == "complete":
                        label_row.workflow_complete(bundle=bundle)
                    elif after.move == "reopen":
                        label_row.workflow_reopen(bundle=bundle)
        except Exception as error:
            if is_transient(error):
                raise
            return f"{type(error).__name__}: {error}"
        return None

    def _save_bundle(self, label_rows: list[LabelRowV2]) -> None:
        """Saved only under leases renewed just now: a whole lease is ahead, longer than the save may take."""
        self._renew([label_row.data_hash for label_row in label_rows])
        self.requests += 1
        with _timed_encord_call(), self._project.create_bundle(bundle_size=self._bundle_size) as bundle:
            for label_row in label_rows:
                label_row.save(bundle=bundle)
