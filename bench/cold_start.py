"""Cold start of each built function: the import of its handler, as a new Lambda container pays it.

    python -m bench.cold_start [--repeat 5] [--build-dir DIR]

Measures what `sam build` made, not the source tree: `make artifact-x86_64` builds the template for this host
(cached in .artifact/; with --build-dir, that build is used as it is), and every function in it is imported by
Python 3.13 (Lambda's runtime) as Lambda loads it: nothing on the path but the function and the layer (`-S`), the
template's environment for that function plus what Lambda sets (LAMBDA_TASK_ROOT among it, so Powertools'
Tracer is on, as deployed with `Tracing: Active`), and no bytecode cache (`sam build` ships none and Lambda's code
is read-only, so every cold start compiles every module it imports). The same import is timed once more with a
warm bytecode cache, which is what shipping .pyc files in the artifact would give.

Each figure is the median of `--repeat` fresh interpreters (`-X importtime`); the heaviest top-level packages are
the time of their own modules within the handler's import, so a package that a handler does not need shows up.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bench.report import publish
from local.artifact_check import Built

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / ".artifact" / "x86_64"
PLACEHOLDERS = {
    "ENCORD_SECRET_ID": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:encord-AbCdEf",
    "IMPORT_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/chunks",
}
"""Values for the variables the template fills from its resources and parameters; any other becomes `x`."""
LAMBDA = {
    "AWS_REGION": "eu-west-1",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
    "LANG": "C.UTF-8",
    "PATH": "/usr/bin:/bin",
}


def python313() -> str:
    """The interpreter the Makefile's artifact targets use: PYTHON313, else pyenv's 3.13, else python3.13."""
    found = os.environ.get("PYTHON313") or next(
        (str(path) for path in sorted(Path.home().glob(".pyenv/versions/3.13*/bin/python3.13"))), None
    )
    found = found or shutil.which("python3.13")
    if not found:
        raise SystemExit("cold_start needs python3.13 (Lambda's runtime): set PYTHON313")
    return found


@contextlib.contextmanager
def built(build_dir: Path | None) -> Iterator[Built]:
    """The x86_64 build, made (or brought up to date, from sam's cache) unless a directory is given; held under a
    lock so that two benchmark runs do not build into the same directory at once."""
    if build_dir is not None:
        yield Built(build_dir.resolve())
        return
    BUILD.parent.mkdir(exist_ok=True)
    with open(BUILD.parent / "x86_64.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(
            ["make", "--no-print-directory", "artifact-x86_64"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
        )
        yield Built(BUILD)


class _CloudFormationLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
    """Reads a template's short-form intrinsics (`!Sub`, ...) as None; `sam build` writes `Ref` as {"Ref": ...}."""


_CloudFormationLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def environments(built: Built) -> dict[str, dict[str, str]]:
    """Each built function's folder name -> the environment the template gives it (globals, then its own)."""
    template: dict[str, Any] = yaml.load((built.directory / "template.yaml").read_text(), _CloudFormationLoader)
    shared = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    parameters = template.get("Parameters", {})
    found = {}
    for name, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        own = resource["Properties"].get("Environment", {}).get("Variables", {})
        variables = {**shared, **own}
        found[name] = {key: _literal(key, value, parameters) for key, value in variables.items()}
    return found


def _literal(name: str, value: Any, parameters: dict[str, Any]) -> str:
    """A variable's value: as written, a parameter's default for a `Ref` to it, else a placeholder."""
    if isinstance(value, dict) and set(value) == {"Ref"} and "Default" in parameters.get(value["Ref"], {}):
        return str(parameters[value["Ref"]]["Default"])
    if value is None or isinstance(value, dict | list):
        return PLACEHOLDERS.get(name, "x")
    return str(value)


def import_times(
    python: str, function: Path, layer: Path, environment: dict[str, str], cache: Path
) -> tuple[int, dict[str, int]]:
    """Microseconds to import `app`, and of that, each top-level package's own modules.

    `cache`: the bytecode cache directory (PYTHONPYCACHEPREFIX), read only (`-B`). -X importtime prints a
    module after everything it imports, indented by depth; `app` is the last line at depth 0, and the lines
    since the previous depth-0 line are what it pulled in.
    """
    result = _run(python, function, layer, environment, cache, "-B", "-X", "importtime")
    subtree: list[tuple[int, str]] = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        if not name.startswith("  "):  # depth 0
            if name.strip() == "app":
                by_package: dict[str, int] = defaultdict(int)
                for module_us, module in subtree:
                    by_package[module.split(".")[0]] += module_us
                return int(cumulative), dict(by_package)
            subtree = []
            continue
        subtree.append((int(own), name.strip()))
    raise RuntimeError(f"no import time for app in {function.name}: {result.stderr[-500:]}")


def _run(
    python: str, function: Path, layer: Path, environment: dict[str, str], cache: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    variables = {
        **environment,
        **LAMBDA,
        "LAMBDA_TASK_ROOT": str(function),
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "PYTHONPATH": os.pathsep.join([str(function), str(layer)]),
        "PYTHONPYCACHEPREFIX": str(cache),
    }
    command = [python, "-S", *options, "-c", "import app"]
    result = subprocess.run(command, cwd=function, env=variables, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"{function.name} does not import: {result.stderr[-2000:]}")
    return result


def measure(python: str, built: Built, repeat: int) -> list[dict[str, Any]]:
    """Lambda's runtime has the standard library's bytecode and none of the artifact's: the cache is filled by
    one import, then what it holds for the build is deleted (cold), then filled again (with bytecode)."""
    rows = []
    for name, environment in sorted(environments(built).items()):
        function = built.directory / name
        with tempfile.TemporaryDirectory() as directory:
            cache = Path(directory)
            _run(python, function, built.layer, environment, cache)
            shutil.rmtree(cache / built.directory.relative_to(built.directory.anchor))
            cold = [import_times(python, function, built.layer, environment, cache) for _ in range(repeat)]
            _run(python, function, built.layer, environment, cache)
            warm = [import_times(python, function, built.layer, environment, cache)[0] for _ in range(repeat)]
        packages = {package for _, found in cold for package in found}
        median = {package: statistics.median(found.get(package, 0) for _, found in cold) for package in packages}
        heaviest = sorted(median.items(), key=lambda item: item[1], reverse=True)[:6]
        rows.append(
            {
                "function": name,
                "import_ms": round(statistics.median(total for total, _ in cold) / 1000),
                "with_bytecode_ms": round(statistics.median(warm) / 1000),
                "heaviest (own modules, no bytecode)": ", ".join(f"{p} {us / 1000:.0f} ms" for p, us in heaviest),
                "packages": {package: round(us / 1000) for package, us in sorted(median.items())},
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--build-dir", type=Path, help="a `sam build` output for this host, used as it is")
    args = parser.parse_args(argv)
    python = python313()
    with built(args.build_dir) as build:
        rows = measure(python, build, args.repeat)
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True
    )
    publish(
        "cold_start",
        rows,
        ["function", "import_ms", "with_bytecode_ms", "heaviest (own modules, no bytecode)"],
        repeat=args.repeat,
        build=str(build.directory.relative_to(ROOT) if build.directory.is_relative_to(ROOT) else build.directory),
        runtime=f"Python {version.stdout.strip()} -S, x86_64 build",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
