"""validate + merge on local processes against a Dask LocalCluster of two worker processes, in one run.

speed    the 2,000-task ingest export (480x360, three annotators; bench/ingest.py builds it):
         seconds of `validate` + `merge` with local processes (all cores) and with
         DASK_SCHEDULER_ADDRESS pointing at a LocalCluster of two single-threaded workers
         (started before timing, as a cluster is), outputs compared byte for byte
memory   peak RSS of the driver alone (the stage process: its own VmHWM, read as it exits) with
         local processes and with a fresh LocalCluster of two workers, at two export sizes of small
         tasks (bench/size.py builds them); the workers' peaks (local pool children, Dask workers)
         are reported apart
traffic  bytes sent to and received from workers per task, validate and merge

  .venv/bin/python bench/cluster.py [--tasks 2000] [--repeat 2]
  .venv/bin/python bench/cluster.py --memory 5000,50000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest  # noqa: E402  (export builder and measuring helpers)
import size  # noqa: E402  (small-task export builder)

from pipeline.artifacts.annotations import iter_index  # noqa: E402
from pipeline.artifacts.snapshot import read_project  # noqa: E402
from pipeline.core.params import load_section  # noqa: E402
from pipeline.labelstudio.config import dataset_spec  # noqa: E402
from pipeline.stages import merge, validate  # noqa: E402

RUN = [sys.executable, "-m", "pipeline"]


def prepared(export: Path, root: Path, scratch: Path) -> Path:
    """A work folder with params and a pulled snapshot of `export`."""
    work = Path(tempfile.mkdtemp(prefix="cluster-", dir=scratch))
    params = ingest.params_file(work, export, root)
    subprocess.run(
        [*RUN, "pull", "--out", "raw", "--images", "images", "--params", str(params)],
        check=True,
        cwd=work,
        capture_output=True,
    )
    return work


def stage_commands(work: Path, scheduler: str | None) -> list[list[str]]:
    return ingest.stage_commands(work / "params.yaml", *(["--scheduler", scheduler] if scheduler else []))


def measured(commands: list[list[str]], cwd: Path) -> tuple[float, float]:
    """(seconds, CPU seconds) of the stage processes and their own children, run in a wrapper.

    On the Dask backend the workers belong to the cluster, not to the stage: the CPU is the driver's.
    """
    script = textwrap.dedent(f"""
        import json, resource, subprocess, time
        start = time.perf_counter()
        for command in {commands!r}:
            subprocess.run(command, check=True, cwd={str(cwd)!r}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(json.dumps([time.perf_counter() - start, usage.ru_utime + usage.ru_stime]))
    """)
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    return tuple(json.loads(out.strip().splitlines()[-1]))


# Runs a stage in this process and, as it exits, writes its own peak RSS (VmHWM; the pool's processes
# are not in it) and the largest of its waited children's (the local workers) to the file in argv[1].
DRIVER = """
import atexit, resource, runpy, sys
out = sys.argv.pop(1)
def peaks():
    hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    open(out, "w").write(f"{int(hwm.split()[1]) / 1024} {children / 1024}")
atexit.register(peaks)
sys.argv[0] = "pipeline"
runpy.run_module("pipeline", run_name="__main__", alter_sys=True)
"""


def driver_peaks(commands: list[list[str]], cwd: Path) -> tuple[float, float]:
    """(driver's own peak RSS MiB, its local workers' peak MiB), the largest over `commands` (stage CLIs)."""
    driver = workers = 0.0
    for command in commands:
        with tempfile.NamedTemporaryFile(suffix=".peak") as peak:
            wrapped = [sys.executable, "-c", DRIVER, peak.name, *command[3:]]  # command = [python, -m, pipeline, ...]
            subprocess.run(wrapped, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            own, children = map(float, Path(peak.name).read_text().split())
        driver, workers = max(driver, own), max(workers, children)
    return driver, workers


def worker_peaks(client) -> float:
    """The largest VmHWM in MiB among the Dask workers (since they started)."""

    def hwm() -> float:
        line = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
        return int(line.split()[1]) / 1024

    return max(client.run(hwm).values())


def memory(counts: list[int], cache: Path, scratch: Path) -> None:
    """Driver peak RSS at each size, local processes and Dask (a fresh LocalCluster per size), one run."""
    from distributed import Client, LocalCluster

    folder = cache.with_name(cache.name + "-small")
    rows = {}
    for count in counts:
        started = time.perf_counter()
        work = prepared(size.build(folder, count, (48, 64)), folder, scratch)
        print(f"{count} small tasks pulled in {time.perf_counter() - started:.0f} s", flush=True)
        local = driver_peaks(stage_commands(work, None), work)
        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            dask = driver_peaks(stage_commands(work, cluster.scheduler_address), work)[0], worker_peaks(client)
        rows[count] = local, dask
        shutil.rmtree(work, ignore_errors=True)
        print(
            f"{count:>6} tasks: driver peak RSS local {local[0]:.0f} MiB (pool workers {local[1]:.0f}), dask "
            f"{dask[0]:.0f} MiB (Dask workers {dask[1]:.0f})",
            flush=True,
        )
    small, large = min(counts), max(counts)
    for index, backend in enumerate(("local", "dask")):
        ratio = rows[large][index][0] / rows[small][index][0]
        print(f"driver memory ratio {large}/{small} tasks, {backend}: {ratio:.2f} (target <= 1.20)")
    print(f"load average {open('/proc/loadavg').read().split()[:3]}")


def digest(work: Path) -> str:
    hasher = hashlib.sha256()
    for folder in ("annotations", "labels", "validation.json", "agreement.json"):
        paths = [work / folder] if (work / folder).is_file() else sorted((work / folder).rglob("*"))
        for path in (p for p in paths if p.is_file()):
            hasher.update(path.relative_to(work).as_posix().encode() + path.read_bytes())
    return hasher.hexdigest()


def traffic(work: Path, sample: int = 200) -> tuple[float, float]:
    """Mean bytes per task over the first `sample` tasks: (validate, merge), sent plus received."""
    params = work / "params.yaml"
    base, ls, checks = (load_section(name, params) for name in ("base", "labelstudio", "validate"))
    # The validate stage's own rules for this snapshot: the same classes, tags and limits it checks against.
    spec = dataset_spec(read_project(work / "raw").get("label_config"), base, ls, checks.unpainted)
    rules = validate.rules_for(spec, checks)
    with open(work / "raw" / "tasks.jsonl", "rb") as lines:
        payloads = [
            validate.task_payload(line, work / "images", rules.max_image_side) for line, _ in zip(lines, range(sample))
        ]
    validate_bytes = sum(len(p) + len(validate.validate_payload(p, rules)) for p in payloads) / len(payloads)
    tasks = [task for task, _ in zip(iter_index(work / "annotations"), range(sample))]
    # The merge stage's own kernel: its method and the annotator models it estimates over the project
    # (those travel to each worker once, so they are not part of the bytes per task).
    merging = load_section("merge", params)
    models = merge.estimate(work / "annotations", len(spec.names), merging, merging.workers or 1)
    kernel = partial(
        merge.merge_payload,
        method=merging.method,
        models=models,
        num_classes=len(spec.names),
        undecided=merging.undecided,
    )
    sent = [merge.merge_payload_of(task, work / "annotations") for task in tasks]
    merge_bytes = sum(len(p) + len(kernel(p)) for p in sent) / len(sent)
    return validate_bytes, merge_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--memory", default="", help="task counts (e.g. 5000,50000): measure the driver's peak memory")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each backend; the fastest counts")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "segpipe-bench-ingest")
    args = parser.parse_args()
    from distributed import LocalCluster

    if args.memory:
        scratch = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
        memory([int(n) for n in args.memory.split(",")], args.cache, scratch)
        shutil.rmtree(scratch, ignore_errors=True)
        return
    export = ingest.build(args.cache, [args.tasks])[args.tasks]
    scratch = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        work = prepared(export, args.cache, scratch)
        runs = {"local": [], "dask": []}
        for _ in range(args.repeat):
            for backend, scheduler in (("local", None), ("dask", address)):
                runs[backend].append(measured(stage_commands(work, scheduler), work)[0])
                runs[backend + "_digest"] = digest(work)
        per_task = traffic(work)
        driver = measured(stage_commands(work, address), work)  # once more, for the driver's CPU on large tasks
        local, dask = min(runs["local"]), min(runs["dask"])
        print(
            f"{args.tasks} tasks x 3 annotators, validate + merge; seconds per run: local {runs['local']}, dask "
            f"{runs['dask']}"
        )
        print(
            f"local processes {local:.1f} s, Dask LocalCluster (2 workers) {dask:.1f} s: dask/local = "
            f"{dask / local:.2f}"
        )
        print(f"outputs byte-identical: {runs['local_digest'] == runs['dask_digest']}")
        print(
            f"driver CPU on Dask, {args.tasks} tasks: {driver[1]:.1f} s ({1000 * driver[1] / args.tasks:.2f} ms "
            "per task)"
        )
        print(
            f"bytes per task (sent + received): validate {per_task[0] / 1024:.1f} KiB, merge "
            f"{per_task[1] / 1024:.1f} KiB"
        )
        print(f"load average during the speed runs: {open('/proc/loadavg').read().split()[:3]}", flush=True)
    print(
        f"measured at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
        f"{open('/proc/loadavg').read().split()[:3]}"
    )
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
