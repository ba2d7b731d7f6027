"""Hostile edits of real CVAT and Pascal VOC documents: whatever the bytes, reading them ends in located problems
(or a refusal of the whole file), never an exception out of the source."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from label_importer.checks.ontology_resolver import OntologyResolver
from label_importer.checks.validation import FileIndex, index_records
from label_importer.model.data_units import DataUnit, DataUnitIndex
from label_importer.model.limits import Limits
from label_importer.model.project import ProjectView
from label_importer.runtime.deadline import Deadline
from label_importer.sources.bounded_reading import FileRefused
from label_importer.sources.formats import source_for
from label_importer.sources.label_file import LabelFile
from label_importer.sources.label_source import SourceRejected
from local.fake_encord import build_ontology

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
DOCUMENTS = [
    (SAMPLES / "cvat" / "images" / "annotations.xml").read_bytes(),
    (SAMPLES / "cvat" / "video" / "annotations.xml").read_bytes(),
    (SAMPLES / "voc" / "Annotations" / "cherry_001.xml").read_bytes(),
]
UNITS = DataUnitIndex(
    [
        DataUnit("h-cherry", "cherry_001.jpg", 1, 640, 480),
        DataUnit("h-leaf", "leaf.png", 1, 8, 6),
        DataUnit("h-video", "orchard.mp4", 10, 640, 480),
    ]
)
ONTOLOGY = build_ontology()
TOKENS = [
    *(b'"', b"<", b">", b"/>", b"-1", b"1e309", b"nan", b"99999", b",", b";", b"&amp;", b"<box>", b"</image>"),
    *(b'frame="x"', b'rle="1, 2"', b'rotation="abc"', b'encoding="utf-81"', b"\xff\xfe", b"<!DOCTYPE a>"),
]

EDITS = st.lists(
    st.tuples(st.floats(0, 1), st.booleans(), st.integers(1, 12), st.sampled_from(TOKENS)), min_size=1, max_size=4
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(DOCUMENTS), EDITS)
def test_an_edited_document_is_read_to_its_end_or_refused_whole(document: bytes, edits: list) -> None:
    edited = bytearray(document)
    for where, deleting, length, token in edits:
        at = int(where * (len(edited) - 1))
        if deleting:
            del edited[at : at + length]
        else:
            edited[at:at] = token
    file = LabelFile.of_bytes("incoming/annotations.xml", bytes(edited), Limits(), Deadline.in_seconds(600))
    try:
        source = source_for(file, Limits())
        source.options()
        index = FileIndex(max_problems=10, locate=source.locate)
        index.report(source.match(ProjectView(UNITS, ONTOLOGY)))
        index_records(source.items(), UNITS, OntologyResolver(ONTOLOGY), index, Limits())
    except (SourceRejected, FileRefused) as refused:
        problems = refused.problems if isinstance(refused, SourceRejected) else [refused.problem]
        assert problems and all(problem.message for problem in problems)
        return
    assert all(problem.field and problem.message for problem in index.problems if problem.line)
