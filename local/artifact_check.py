"""Checks on what `sam build` made, before anything is deployed: what AWS would run, not the source tree.

    python -m local.artifact_check BUILD_DIR --architecture arm64 [--import-with python3.13]

For the build of one architecture: the unzipped size of each function with the layer, against Lambda's limit;
every native library in the layer built for that architecture, and every CPython extension for 3.13 (or the
stable ABI); the layer's distributions exactly those `shared/requirements.txt` pins (and so the lock's). With
`--import-with`, each built handler is imported by that interpreter with nothing but the function and the layer
on its path (`-S`: no site-packages), as Lambda loads it, and the time it took is printed. Exits 1 with one line
per problem.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LAYER = "ImporterLayer"
UNZIPPED_LIMIT_BYTES = 262_144_000
"""Lambda's quota for a function and all its layers, unzipped (250 MB)."""
ELF_MACHINES = {"arm64": 0xB7, "x86_64": 0x3E}
LINUX_TRIPLETS = {"arm64": "aarch64-linux-gnu", "x86_64": "x86_64-linux-gnu"}
PYTHON_TAG = "cpython-313"


@dataclass(frozen=True)
class Built:
    directory: Path

    @property
    def layer(self) -> Path:
        return self.directory / LAYER / "python"

    @property
    def functions(self) -> list[Path]:
        return sorted(path.parent for path in self.directory.glob("*/app.py"))


def size_of(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def size_problems(built: Built, layer: int) -> tuple[list[str], int]:
    """Problems, and the largest function-with-layer in bytes, given the layer's size."""
    sizes = {function.name: size_of(function) + layer for function in built.functions}
    problems = [
        f"{name} with the layer is {size / 1e6:.1f} MB unzipped; Lambda allows {UNZIPPED_LIMIT_BYTES / 1e6:.1f} MB"
        for name, size in sizes.items()
        if size >= UNZIPPED_LIMIT_BYTES
    ]
    return problems, max(sizes.values(), default=layer)


def elf_machine(path: Path) -> int | None:
    """The e_machine of an ELF file (little-endian, as on both Lambda architectures), or None if not ELF."""
    with path.open("rb") as file:
        header = file.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little")


def native_problems(built: Built, architecture: str) -> list[str]:
    problems = []
    for path in sorted(built.layer.rglob("*.so*")):
        shown = path.relative_to(built.layer)
        machine = elf_machine(path)
        if machine is not None and machine != ELF_MACHINES[architecture]:
            problems.append(f"{shown} is built for ELF machine {machine:#x}, not {architecture}")
        name = path.name
        if ".cpython-" in name and f".{PYTHON_TAG}-{LINUX_TRIPLETS[architecture]}." not in name:
            problems.append(f"{shown} is an extension for another Python or platform than {PYTHON_TAG} {architecture}")
    return problems


def pinned(requirements: Path) -> dict[str, str]:
    versions = {}
    for line in requirements.read_text().splitlines():
        if line and line[0] not in "# ":
            name, _, version = line.partition("==")
            versions[canonicalize_name(name.split("[")[0])] = version.split(";")[0].strip()
    return versions


def installed(layer: Path) -> dict[str, str]:
    versions = {}
    for metadata in layer.glob("*.dist-info/METADATA"):
        fields = HeaderParser().parsestr(metadata.read_text())  # core metadata is RFC 822 headers
        versions[canonicalize_name(fields["Name"])] = fields["Version"]
    return versions


def version_problems(found: dict[str, str], requirements: Path) -> list[str]:
    """`found`: the layer's distributions and versions."""
    wanted = pinned(requirements)
    return [
        f"{name}: the layer has {found.get(name, 'nothing')}, {requirements.name} pins {wanted.get(name, 'nothing')}"
        for name in sorted(wanted.keys() | found.keys())
        if wanted.get(name) != found.get(name)
    ]


def import_times(built: Built, python: str, *, runs: int = 2) -> tuple[list[str], dict[str, float]]:
    """Import each handler as Lambda does: the function and the layer on the path, no site-packages, and no
    bytecode cache, as `sam build` ships none and Lambda's /opt and /var/task are read-only. The fastest of
    `runs` fresh processes, so that the first, which also fills the disk cache, does not count alone."""
    code = "import time; started = time.perf_counter(); import app; print(time.perf_counter() - started)"
    problems, seconds = [], {}
    for function in built.functions:
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as no_cache:
                environment = {
                    "PYTHONPATH": f"{function}:{built.layer}",
                    "PYTHONPYCACHEPREFIX": no_cache,  # caches are looked for (and would be written) only here
                    "AWS_DEFAULT_REGION": "eu-west-1",
                    "LANG": "C.UTF-8",
                }
                done = subprocess.run(
                    [python, "-S", "-B", "-c", code],
                    cwd=function,
                    env=environment,
                    capture_output=True,
                    text=True,
                    check=False,
                )
            if done.returncode:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                problems.append(f"{function.name} does not import on {python}: {last}")
                break
            took = float(done.stdout.split()[-1])
            seconds[function.name] = min(took, seconds.get(function.name, took))
    return problems, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("--architecture", choices=sorted(ELF_MACHINES), required=True)
    parser.add_argument("--requirements", type=Path, default=ROOT / "shared" / "requirements.txt")
    parser.add_argument("--import-with", metavar="PYTHON", help="an interpreter to import each built handler with")
    args = parser.parse_args(argv)
    built = Built(args.build_dir.resolve())
    if not built.functions or not built.layer.is_dir():
        print(f"{args.build_dir} holds no `sam build` output (functions and {LAYER})", file=sys.stderr)
        return 1
    layer, distributions = size_of(built.layer.parent), installed(built.layer)
    problems, largest = size_problems(built, layer)
    problems += native_problems(built, args.architecture)
    problems += version_problems(distributions, args.requirements)
    print(
        f"{args.architecture}: {len(built.functions)} functions, layer {layer / 1e6:.1f} MB, "
        f"largest function with layer {largest / 1e6:.1f} MB unzipped (limit {UNZIPPED_LIMIT_BYTES / 1e6:.1f} MB), "
        f"{len(distributions)} distributions"
    )
    if args.import_with:
        failed, seconds = import_times(built, args.import_with)
        problems += failed
        for name, took in seconds.items():
            print(f"  {name}: imported in {took:.2f} s (Python 3.13 -S, no bytecode cache)")
    for problem in problems:
        print(f"artifact: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
