"""CPU microseconds per label imported, split into our code, the encord SDK and the AWS SDK.

    python -m bench.cpu_per_label [--units 1000] [--repeat 3]

The import function runs on the queued chunks of a generated file (every kind of image label) with no
network latency, on this thread. Its CPU time is `time.thread_time` (moto and the fake Encord server answer
from other threads of this process and are not counted). A sampler thread looks at this thread's Python
stack every half millisecond and attributes each sample to the innermost frame that is ours, the encord
SDK's, or boto3/botocore's (a library frame such as pydantic's counts for whoever called it); samples
blocked on a socket, a lock or a sleep are waits and left out. cProfile would distort the split: its cost
per call is largest where the calls are smallest and most numerous, in the SDK's object model.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from bench.report import lambda_output_discarded, publish
from bench.sdk_loops import fresh_images
from local.lambda_runtime import drain_queue
from local.pipeline import Pipeline
from local.sample_labels import image_records, jsonl
from local.stack import local_stack

ROOT = Path(__file__).resolve().parents[1]
PARTS = {
    "ours": (str(ROOT / "shared" / "label_importer"), str(ROOT / "functions")),
    "encord SDK": ("/site-packages/encord/",),
    "AWS SDK (boto3)": ("/site-packages/boto3/", "/site-packages/botocore/"),
}
WAITS = {("socket.py", "readinto"), ("threading.py", "wait"), ("selectors.py", "select"), ("ssl.py", "read")}


def part_of(frame: FrameType | None) -> tuple[str, str] | None:
    """Whose CPU a sample is (the innermost frame of a known part) and that frame's function; None while
    blocked or outside the handler."""
    innermost = frame
    if innermost is not None and (Path(innermost.f_code.co_filename).name, innermost.f_code.co_name) in WAITS:
        return None
    while frame is not None:
        for part, places in PARTS.items():
            for place in places:
                if place in frame.f_code.co_filename:
                    where = frame.f_code.co_filename.split(place, 1)[-1]
                    return part, f"{where}:{frame.f_code.co_name}"
        frame = frame.f_back
    return None


class Sampler(threading.Thread):
    def __init__(self, thread_id: int, interval: float = 0.0005) -> None:
        super().__init__(daemon=True)
        self.samples: collections.Counter[str] = collections.Counter()
        self.functions: collections.Counter[str] = collections.Counter()
        """Samples by the innermost function of the part they count for (SDK hot spots)."""
        self._thread_id, self._interval, self._done = thread_id, interval, threading.Event()

    def run(self) -> None:
        while not self._done.wait(self._interval):
            found = part_of(sys._current_frames().get(self._thread_id))
            if found is not None:
                self.samples[found[0]] += 1
                self.functions[f"{found[0]}: {found[1]}"] += 1

    def stop(self) -> collections.Counter[str]:
        self._done.set()
        self.join()
        return self.samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    runs, labels, functions = [], 0, collections.Counter[str]()
    switch_interval = sys.getswitchinterval()
    with lambda_output_discarded(), local_stack() as stack:
        pipeline = Pipeline.on(stack)
        for _ in range(args.repeat):
            titles = fresh_images(stack, args.units)
            job_id = pipeline.drop("incoming/cpu.jsonl", jsonl(image_records(titles)))
            sampler = Sampler(threading.get_ident())
            sys.setswitchinterval(0.0005)  # let the sampler in often, even while the handler holds the GIL
            sampler.start()
            started, cpu = time.perf_counter(), time.thread_time()
            drain_queue(stack, pipeline.import_labels)  # one consumer: the handler runs on this thread
            cpu, wall = time.thread_time() - cpu, time.perf_counter() - started
            samples = sampler.stop()
            functions.update(sampler.functions)
            sys.setswitchinterval(switch_interval)
            labels = pipeline.job(job_id).labels_added
            counted = sum(samples.values())
            runs.append({"wall": wall, "total CPU": cpu, **{part: cpu * samples[part] / counted for part in PARTS}})

    def per_label(key: str) -> float:
        return statistics.median(run[key] for run in runs) / labels * 1e6

    total = per_label("total CPU")
    rows = [
        {"part": part, "us_per_label": round(per_label(part), 1), "share": f"{per_label(part) / total:.0%}"}
        for part in [*PARTS, "total CPU"]
    ]
    publish(
        "cpu_per_label",
        rows,
        ["part", "us_per_label", "share"],
        units=args.units,
        labels=labels,
        wall_us_per_label=round(per_label("wall"), 1),
        sdk_hot_spots=[
            f"{name} {count / sum(functions.values()):.1%}"
            for name, count in functions.most_common()
            if name.startswith("encord SDK")
        ][:8],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
