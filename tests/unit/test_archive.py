"""Zip archives as hostile input: each refusal with its stable code, before anything is expanded.

The archives are built here byte for byte where a well-behaved writer would refuse to make them (a `..` name, a
symlink, a header that lies about its size), so each test shows the check it names is what stops the file.
"""

from __future__ import annotations

import io
import random
import stat
import struct
import tracemalloc
import zipfile
from typing import Any

import boto3
import pytest
from moto import mock_aws

from label_importer.model.limits import Limits
from label_importer.model.problems import ErrorCode
from label_importer.runtime.deadline import Deadline
from label_importer.sources.archive import READ_BUFFER_BYTES, Archive
from label_importer.sources.bounded_reading import FileRefused, ReadBudget
from label_importer.sources.label_file import LabelFile
from label_importer.store.s3_objects import LabelFileRef, RangedObject

_DEADLINE = Deadline.in_seconds(3600)


def archive_of(entries: dict[str, bytes], *, symlinks: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def refusal(data: bytes, limits: Limits | None = None) -> ErrorCode:
    limits = limits or Limits()
    with pytest.raises(FileRefused) as refused:
        LabelFile.of_bytes("incoming/x.zip", data, limits, Deadline.in_seconds(3600)).archive()
    assert refused.value.problem.message
    return refused.value.problem.code


def test_names_that_leave_the_archive_are_refused() -> None:
    for name in ("../../etc/cron.d/x.txt", "labels/../../x.txt", "/etc/passwd", "C:/x.txt", "labels\\..\\x.txt"):
        assert refusal(archive_of({"classes.txt": b"cherry\n", name: b"0 0.5 0.5 0.1 0.1\n"})) == (
            ErrorCode.UNSAFE_ARCHIVE_ENTRY
        ), name


def test_a_symbolic_link_is_refused() -> None:
    data = archive_of({"classes.txt": b"cherry\n", "labels/a.txt": b"/etc/passwd"}, symlinks=("labels/a.txt",))
    assert refusal(data) is ErrorCode.UNSAFE_ARCHIVE_ENTRY


def test_a_name_listed_twice_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("labels/a.txt", b"0 0.5 0.5 0.1 0.1\n")
        with pytest.warns(UserWarning):
            archive.writestr("labels/a.txt", b"1 0.5 0.5 0.1 0.1\n")
    assert refusal(buffer.getvalue()) is ErrorCode.UNSAFE_ARCHIVE_ENTRY


def test_too_many_entries_are_refused_from_the_end_record() -> None:
    data = archive_of({f"labels/{i}.txt": b"" for i in range(11)})
    assert refusal(data, Limits(max_archive_entries=10)) is ErrorCode.TOO_MANY_ENTRIES


def test_a_zip_bomb_is_refused_by_its_ratio() -> None:
    data = archive_of({"labels/a.txt": b"0" * (50 << 20)})  # 50 MiB of zeros deflate to ~50 KiB
    assert len(data) < 100 << 10
    assert refusal(data) is ErrorCode.COMPRESSION_RATIO_TOO_HIGH


def test_entries_declaring_more_than_the_file_limit_are_refused() -> None:
    data = archive_of({"labels/a.txt": b"a" * 4000, "labels/b.txt": b"b" * 4000})
    assert refusal(data, Limits(max_file_bytes=6000)) is ErrorCode.FILE_TOO_LARGE


def test_an_entry_whose_header_lies_about_its_size_yields_no_more_than_it_declares() -> None:
    data = bytearray(archive_of({"labels/a.txt": b"0" * (1 << 20)}))
    directory = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, directory + 24, 100)  # the directory now says 100 bytes
    archive = LabelFile.of_bytes("incoming/x.zip", bytes(data), Limits(), Deadline.in_seconds(3600)).archive()
    with pytest.raises(FileRefused) as refused:
        archive.read("labels/a.txt", max_bytes=1 << 30)
    assert refused.value.problem.code is ErrorCode.INVALID_ARCHIVE


def test_not_a_zip_and_a_truncated_zip_are_invalid_archives() -> None:
    assert refusal(b"these are not the bytes of a zip archive") is ErrorCode.INVALID_ARCHIVE
    whole = archive_of({"classes.txt": b"cherry\n"})
    assert refusal(whole[: len(whole) // 2]) is ErrorCode.INVALID_ARCHIVE


def test_an_entry_built_whole_is_bounded() -> None:
    data = archive_of({"data.yaml": b"names: [" + b"a, " * 100_000 + b"]"})
    archive = LabelFile.of_bytes("incoming/x.zip", data, Limits(), Deadline.in_seconds(3600)).archive()
    with pytest.raises(FileRefused) as refused:
        archive.read("data.yaml", max_bytes=1 << 16)
    assert refused.value.problem.code is ErrorCode.ITEM_TOO_LARGE
    assert "data.yaml" in refused.value.problem.message


def test_folders_and_macos_extras_are_not_entries() -> None:
    data = archive_of({"labels/": b"", "__MACOSX/labels/._a.txt": b"\0", "labels/a.txt": b"0 0.5 0.5 0.1 0.1\n"})
    archive = LabelFile.of_bytes("incoming/x.zip", data, Limits(), Deadline.in_seconds(3600)).archive()
    assert archive.names == ["labels/a.txt"]


def test_reading_an_entry_holds_a_buffer_not_the_archive() -> None:
    """An 8 MiB entry of label lines, read through: peak memory stays near the read buffer, under half of it."""
    numbers = random.Random(7)
    body = b"".join(
        f"0 {numbers.random():.6f} {numbers.random():.6f} {numbers.random():.6f} {numbers.random():.6f}\n".encode()
        for _ in range(200_000)
    )
    data = archive_of({"labels/a.txt": body})
    archive = LabelFile.of_bytes("incoming/x.zip", data, Limits(), Deadline.in_seconds(3600)).archive()
    tracemalloc.start()
    stream = archive.open("labels/a.txt")
    read = 0
    while part := stream.read(1 << 16):
        read += len(part)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert read == len(body)
    assert peak < 4 * READ_BUFFER_BYTES


def test_an_archive_in_s3_is_read_through_ranged_requests_not_whole() -> None:
    """Listing a 30 MB archive and reading one small entry of it fetches a few buffers, not the archive."""
    numbers = random.Random(3)
    big = numbers.randbytes(30 << 20)  # incompressible
    data = archive_of({"labels/big.bin": big, "classes.txt": b"cherry\n"})
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="labels")
        s3.put_object(Bucket="labels", Key="incoming/x.zip", Body=data)
        fetched: list[int] = []

        class Counting:
            def get_object(self, **request: Any) -> Any:
                response = s3.get_object(**request)
                fetched.append(response["ContentLength"])
                assert "Range" in request
                return response

        ref = LabelFileRef("labels", "incoming/x.zip", None, "etag", len(data))
        archive = Archive(RangedObject(Counting(), ref, len(data)), ReadBudget(1 << 31, 1000, _DEADLINE), Limits())
        assert archive.names == ["labels/big.bin", "classes.txt"]
        assert archive.read("classes.txt", max_bytes=1024) == b"cherry\n"
    assert sum(fetched) <= 3 * READ_BUFFER_BYTES < len(data) // 8
