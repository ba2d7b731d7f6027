"""Adding an input format is one class under sources/ and one entry in `formats.FORMATS`.

The format here exists nowhere else: `title,object,x,y`, one point per line. Written as a new format would be,
and registered the way `formats.py` lists the real ones, it goes through the same checks, chunks, import and
reports as JSON Lines and COCO, with nothing else in the package changed, and its problems point into its own
columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import orjson
import pytest

from label_importer.model.jobs import JobStatus
from label_importer.model.label_format import Header
from label_importer.model.limits import Limits
from label_importer.model.problems import ErrorCode, Problem
from label_importer.model.project import ProjectView
from label_importer.model.source_items import Record, Rejected, SourceItem
from label_importer.sources import formats
from label_importer.sources.label_file import LabelFile
from local.pipeline import Pipeline

_COLUMNS = {"data_title": "title", "name": "object", "point": "x,y"}


class PointsCsv:
    records_noun = "points"
    options_section = "header"
    options_line = 0

    @staticmethod
    def claims(file: LabelFile) -> bool:
        return file.key.endswith(".csv")

    def __init__(self, file: LabelFile, limits: Limits) -> None:
        self._file = file

    def options(self) -> Header:
        return Header()  # the project comes from the key or the deployment

    def match(self, project: ProjectView) -> list[Problem]:
        return []

    def items(self) -> Iterator[SourceItem]:
        for number, line in enumerate(self._file.stream().read().decode().splitlines(), 1):
            title, name, *point = line.split(",")
            try:
                x, y = map(float, point)
            except ValueError:
                yield Rejected(number, None, [Problem(number, "x,y", ErrorCode.WRONG_TYPE, "expected two numbers")])
                continue
            record = {"data_title": title, "objects": [{"name": name, "point": [x, y]}]}
            yield Record(number, orjson.dumps(record))

    def locate(self, problem: Problem) -> Problem:
        column = next((name for field, name in _COLUMNS.items() if field in problem.field), problem.field)
        return replace(problem, field=column)


@pytest.fixture
def with_points_csv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "FORMATS", (PointsCsv, *formats.FORMATS))


@pytest.mark.usefixtures("with_points_csv")
def test_a_format_added_as_one_class_imports_through_the_whole_pipeline(pipeline: Pipeline) -> None:
    first, second = pipeline.stack.encord.add_image("p1.jpg"), pipeline.stack.encord.add_image("p2.jpg")

    job = pipeline.run("incoming/points.csv", b"p1.jpg,Pedicel,0.25,0.5\np2.jpg,Pedicel,0.75,0.5\n")

    assert (job.status, job.total_records, job.rows_imported) == (JobStatus.COMPLETED, 2, 2)
    rows = pipeline.stack.read_back([first, second])
    points = {
        data_hash: [(instance.get_annotation(0).coordinates.x,) for instance in row.get_object_instances()]
        for data_hash, row in rows.items()
    }
    assert points == {first: [(0.25,)], second: [(0.75,)]}


@pytest.mark.usefixtures("with_points_csv")
def test_its_problems_name_its_own_columns_and_nothing_reaches_encord(pipeline: Pipeline) -> None:
    pipeline.stack.encord.add_image("p3.jpg")
    pipeline.stack.encord.reset_counts()

    job = pipeline.run("incoming/bad-points.csv", b"p3.jpg,Stalk,0.5,0.5\np3.jpg,Pedicel,left,0.5\n")

    assert job.status is JobStatus.REJECTED
    problems = [orjson.loads(line) for line in pipeline.report(job.job_id, "errors.jsonl").splitlines()]
    assert [(p["line"], p["field"], p["code"]) for p in problems] == [
        (1, "object", ErrorCode.UNKNOWN_OBJECT),
        (2, "x,y", ErrorCode.WRONG_TYPE),
    ]
    assert pipeline.stack.encord.write_requests() == 0
