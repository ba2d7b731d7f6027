"""Which file an S3 event is about, and the job id that file version gets.

The job id is a hash of bucket, key and version (or ETag when the bucket is not versioned): S3 delivers
events at least once, and a duplicate must land on the same job rather than start a second import,
while a re-upload (a new version) is a new job.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event
from botocore.exceptions import ClientError

from label_importer.model.upload_order import upload_order

INCOMING_PREFIX = "incoming/"


@dataclass(frozen=True)
class LabelFileRef:
    bucket: str
    key: str
    version_id: str | None
    etag: str
    size: int
    event_time: str = ""
    sequencer: str = ""

    @property
    def upload_order(self) -> str:
        return upload_order(self.event_time, self.sequencer, self.job_id)

    @property
    def job_id(self) -> str:
        identity = f"{self.bucket}\x1f{self.key}\x1f{self.version_id or self.etag}"
        return hashlib.sha256(identity.encode()).hexdigest()[:32]

    @property
    def key_project_hash(self) -> str | None:
        return key_project_hash(self.key)

    @property
    def version_args(self) -> dict[str, str]:
        """Read exactly the version the event is about, even if the key has been overwritten since.

        The template's bucket is versioned; on an unversioned bucket the latest object is read.
        """
        return {"VersionId": self.version_id} if self.version_id else {}


def key_project_hash(key: str) -> str | None:
    """`incoming/<project_hash>/file.jsonl` names the project; `incoming/file.jsonl` does not."""
    parts = key.removeprefix(INCOMING_PREFIX).split("/")
    return parts[0] if len(parts) > 1 and parts[0] else None


class ObjectUnavailable(Exception):
    """The file version the event names cannot be read any more: deleted, replaced, or out of reach."""

    def __init__(self, ref: LabelFileRef, code: str) -> None:
        super().__init__(
            f"s3://{ref.bucket}/{ref.key} (version {ref.version_id or '-'}) could not be read ({code}): it was "
            "deleted or replaced before it was validated; upload it again"
        )


_GONE = frozenset({"NoSuchKey", "NoSuchVersion", "AccessDenied", "InvalidArgument"})


def read_version(s3: Any, ref: LabelFileRef) -> tuple[Any, int]:
    """The body of exactly the version the event names, and its stored size; raises ObjectUnavailable."""
    try:
        response = s3.get_object(Bucket=ref.bucket, Key=ref.key, **ref.version_args)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code in _GONE:
            raise ObjectUnavailable(ref, code) from None
        raise
    return response["Body"], response.get("ContentLength", ref.size)


DRY_RUN_METADATA = "dry-run"
"""S3 user metadata (`x-amz-meta-dry-run: true`) asking for a dry run of the file whatever its own options say:
how `label-importer import --dry-run` asks, and how anyone can without editing the file."""


def dry_run_requested(s3: Any, ref: LabelFileRef) -> bool:
    """Whether the version the event names was uploaded with `dry-run: true` metadata. A version gone by now is not
    asked about: reading it again for chunking fails the job as unavailable, as it should."""
    try:
        response = s3.head_object(Bucket=ref.bucket, Key=ref.key, **ref.version_args)
    except ClientError as error:
        if error.response["Error"]["Code"] in _GONE | {"404", "403"}:
            return False
        raise
    return str(response.get("Metadata", {}).get(DRY_RUN_METADATA, "")).lower() == "true"


def label_files(event: dict[str, Any]) -> list[LabelFileRef]:
    """Object keys in S3 events are URL-encoded (spaces as '+'): decode them, or GetObject finds nothing."""
    return [
        LabelFileRef(
            bucket=record.s3.bucket.name,
            key=unquote_plus(record.s3.get_object.key),
            version_id=record.s3.get_object.version_id,
            etag=record.s3.get_object.etag,
            size=record.s3.get_object.size,
            event_time=record.event_time,
            sequencer=record.s3.get_object.sequencer,
        )
        for record in S3Event(event).records
    ]


class RangedObject(io.RawIOBase):
    """One object version as a seekable, read-only file whose every read is a ranged GET.

    Zip readers seek to the central directory at the end and then to each entry: wrapped in an
    `io.BufferedReader`, an archive is read a buffer at a time, so memory stays flat however large it is.
    """

    def __init__(self, s3: Any, ref: LabelFileRef, size: int) -> None:
        self._s3 = s3
        self._ref = ref
        self._size = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        origin = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, origin + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        end = min(self._position + len(buffer), self._size)
        if end <= self._position:
            return 0
        try:
            response = self._s3.get_object(
                Bucket=self._ref.bucket,
                Key=self._ref.key,
                Range=f"bytes={self._position}-{end - 1}",
                **self._ref.version_args,
            )
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code in _GONE:
                raise ObjectUnavailable(self._ref, code) from None
            raise
        data = response["Body"].read()
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)
