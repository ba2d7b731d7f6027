"""`label-importer try-encord`: the fake Encord API on this machine, seeded with a project, until Ctrl-C.

With the spec files `export-spec` writes (or written by hand), the fake serves that ontology and those data
units, under the units file's project hash; with neither, the demo ontology and a few demo data units. It prints
its address, the project hash and a key file it generated, so that `label-importer import FILE --project ...
--domain ... --ssh-key-file ...` runs a file end to end, reports and all, with no Encord account.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from encord.constants.enums import DataType
from encord.objects import OntologyStructure

from label_importer.model.data_units import DataUnit
from label_importer_cli.exit_codes import UsageError
from local.fake_encord import FakeEncordServer, build_ontology
from local.keys import generate_ssh_private_key

DEMO_IMAGES = 10
"""image_00000.jpg to image_00009.jpg: what samples/quickstart.jsonl and the demo's files address."""


@dataclass(frozen=True)
class Seed:
    """What the fake serves: the ontology, the data units and, when a spec gives it, the project hash."""

    ontology: OntologyStructure
    units: list[DataUnit]
    project_hash: str | None


def serve(seed: Seed, key_file: Path | None) -> None:
    """Start the fake, say how to reach it, and serve until Ctrl-C (SIGINT), then stop it and return."""
    # A process started in the background inherits SIGINT ignored; this one is stopped by nothing else.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    fake = FakeEncordServer()
    if seed.project_hash is not None:
        fake.project_hash = seed.project_hash
    fake.use_ontology(seed.ontology)
    _add_units(fake, seed.units)
    key = _write_key(key_file)
    with fake:
        _say(
            "Fake Encord API running on this machine (Ctrl-C stops it; what it holds is gone then)",
            f"domain: {fake.url}",
            f"project: {fake.project_hash}",
            f"key file: {key}",
            f"data units: {len(seed.units)}",
            "import a label file into it with:",
            f"  label-importer import FILE --project {fake.project_hash} --domain {fake.url} --ssh-key-file {key}",
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    _say("stopped")


def demo_seed() -> Seed:
    """The demo ontology, images image_00000.jpg to image_00009.jpg (what samples/quickstart.jsonl addresses), a
    video, an image group and a DICOM series."""
    images = [_unit(f"image_{index:05d}.jpg", DataType.IMAGE, 1) for index in range(DEMO_IMAGES)]
    group_sizes = ((640, 480), (800, 600), (640, 480))
    others = [
        _unit("video_00000.mp4", DataType.VIDEO, 50),
        DataUnit(str(uuid.uuid4()), "group_00000", 3, None, None, group_sizes, DataType.IMG_GROUP),
        _unit("dicom_00000", DataType.DICOM, 6),
    ]
    return Seed(build_ontology(), [*images, *others], None)


def _unit(title: str, data_type: DataType, frames: int) -> DataUnit:
    return DataUnit(str(uuid.uuid4()), title, frames, 640, 480, data_type=data_type)


def _say(*lines: str) -> None:
    for line in lines:
        print(line)
    sys.stdout.flush()  # read line by line by whoever started it, a pipe included


def _write_key(key_file: Path | None) -> Path:
    """A fresh Ed25519 key (the fake takes any key it has not revoked), readable by this user only."""
    path = key_file or Path(tempfile.mkdtemp(prefix="try-encord-")) / "encord-key"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generate_ssh_private_key())
        path.chmod(0o600)
    except OSError as error:
        raise UsageError(f"--key-file {path}: cannot write the key there ({error.strerror})") from None
    return path


def _add_units(fake: FakeEncordServer, units: list[DataUnit]) -> None:
    for unit in units:
        title, data_hash, frames = unit.title, unit.data_hash, unit.number_of_frames
        if unit.data_type is DataType.IMG_GROUP:
            fake.add_image_group(title, unit.image_sizes, data_hash=data_hash)
            continue
        width, height = unit.width, unit.height
        if width is None or height is None:
            raise UsageError(f"data unit {data_hash} ({title!r}): the fake needs its width and height")
        if unit.data_type is DataType.VIDEO:
            fake.add_video(title, number_of_frames=frames, width=width, height=height, data_hash=data_hash)
        elif unit.data_type is DataType.DICOM:
            fake.add_dicom_series(title, number_of_slices=frames, width=width, height=height, data_hash=data_hash)
        else:
            fake.add_image(title, width=width, height=height, data_hash=data_hash)
