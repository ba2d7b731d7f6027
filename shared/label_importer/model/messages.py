"""The chunk message: one model shared by the validator that sends it and the import function that reads it.

One chunk is one Encord bundle (listing + bundled initialise + bundled save), so a chunk either saves as
a whole or is retried as a whole; SQS redelivery never leaves half a message applied.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from label_importer.model.branches import MAIN_BRANCH
from label_importer.model.label_format import AfterSave, ClassificationLabel, FileMode, Mode, ObjectLabel


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordLabels(_Message):
    """The labels of one file line, kept with its line number so failures point back into the file."""

    line: int
    objects: list[ObjectLabel] = Field(default_factory=list)
    classifications: list[ClassificationLabel] = Field(default_factory=list)


class ChunkRow(_Message):
    """Everything the file says about one data unit (= one Encord label row), merged across lines."""

    data_hash: str
    records: list[RecordLabels]
    after_save: AfterSave | None = None
    """The workflow actions for the data unit's task: the file's, with its records' in their place."""

    @property
    def lines(self) -> list[int]:
        return [record.line for record in self.records]


class Chunk(_Message):
    job_id: str = Field(min_length=1)
    chunk_index: int = Field(ge=0)
    project_hash: str
    mode: FileMode
    branch: str = MAIN_BRANCH
    """Checked against the job's, like the project and mode: the job record is the authority."""
    rows: list[ChunkRow]


class S3Location(_Message):
    bucket: str
    key: str


class ChunkMessage(_Message):
    """The SQS body: the chunk itself, or a pointer to it in S3 when it is too big for a message.

    Only the shape is checked here; whether the validator queued this chunk is for chunk_queue.verified_chunk.
    """

    job_id: str = Field(min_length=1)
    chunk_index: int = Field(ge=0)
    chunk: Chunk | None = None
    claim_check: S3Location | None = None

    @model_validator(mode="after")
    def _one_carrier(self) -> ChunkMessage:
        if (self.chunk is None) == (self.claim_check is None):
            raise ValueError("a chunk message carries either the chunk or a claim check, and not both")
        return self


def chunk_document(
    job_id: str, chunk_index: int, project_hash: str, mode: Mode, branch: str, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """A `Chunk` as the JSON the queue carries, from rows validated in pass 1 (see chunking.assemble_chunks);
    the import function parses it back with `Chunk`, so the model still guards the boundary."""
    return {
        "job_id": job_id,
        "chunk_index": chunk_index,
        "project_hash": project_hash,
        "mode": str(mode),
        "branch": branch,
        "rows": rows,
    }
