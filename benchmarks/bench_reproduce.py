"""Wall time of ``nlhf reproduce`` in N worker processes against one process, side by side.

Runs ``nlhf reproduce [NAMES] --<mode> --fresh`` twice in one invocation of this script, each in
its own subprocess and output folder: serially (``--jobs 1``) and with ``--jobs N``. Reports
wall time, CPU time of every process involved (the workers included) and the 1-minute load
average before and after each run (other work on the machine competes for its cores), then
compares every output file of the two runs byte for byte (figures, data, checks, index and
the stored cells).

Usage::

    python benchmarks/bench_reproduce.py --full --jobs 2                    # every experiment
    python benchmarks/bench_reproduce.py --full --jobs 2 last_iterate sail  # a subset
    python benchmarks/bench_reproduce.py --full --jobs 2 --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nlhf_theory.reproduce import write_section

ROOT = Path(__file__).resolve().parents[1]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for descendants
    return usage.ru_utime + usage.ru_stime


def _run(names, mode: str, jobs: int, out: Path) -> dict:
    command = [sys.executable, "-m", "nlhf_theory.cli", "reproduce", *names, f"--{mode}",
               "--fresh", "--jobs", str(jobs), "--out", str(out),
               "--experiments", str(ROOT / "experiments")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    load_before, cpu_before = os.getloadavg()[0], _cpu_seconds()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    summary = [line for line in done.stdout.splitlines() if "checks pass (" in line]
    return {"jobs": jobs, "seconds": seconds, "cpu": _cpu_seconds() - cpu_before,
            "load": (load_before, os.getloadavg()[0]),
            "summary": summary[-1] if summary else "", "command": " ".join(command[1:])}


def _files(out: Path) -> dict:
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.rglob("*")) if p.is_file()}


def _machine() -> str:
    model = platform.processor() or "unknown processor"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import jax

    import nlhf_theory

    return (f"{model}, cpu_count {os.cpu_count()}, {platform.platform()}, python "
            f"{platform.python_version()}, nlhf_theory {nlhf_theory.__version__}, "
            f"jax {jax.__version__}")


def _commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="experiments (default all)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="mode", action="store_const", const="quick")
    size.add_argument("--full", dest="mode", action="store_const", const="full")
    parser.set_defaults(mode="full")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--commit", default=None, help="the code's commit (default: git HEAD)")
    parser.add_argument("--write", default=None, metavar="MD",
                        help="replace the bench_reproduce section of this Markdown file")
    args = parser.parse_args(argv)
    commit = args.commit or _commit()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [_run(args.names, args.mode, jobs, Path(tmp) / f"jobs{jobs}")
                for jobs in (1, args.jobs)]
        serial, parallel = (_files(Path(tmp) / f"jobs{r['jobs']}") for r in runs)
    differ = sorted(k for k in serial.keys() | parallel.keys() if serial.get(k) != parallel.get(k))
    cells = sum(k.startswith(".cells/") for k in serial)
    invocation = " ".join(["python benchmarks/bench_reproduce.py", *args.names,
                           f"--{args.mode}", "--jobs", str(args.jobs)])
    lines = ["## Experiment cells in worker processes (`benchmarks/bench_reproduce.py`)",
             "", f"Produced by `{invocation}` on {date}, code at commit {commit}.", "",
             f"Machine: {_machine()}.", "",
             f"Experiments: {', '.join(args.names) if args.names else 'all'} "
             f"(`--{args.mode}`, {cells} cells, every one computed: `--fresh`). Each run is "
             "`nlhf reproduce` in a fresh subprocess, one after the other; wall time by "
             "`time.perf_counter`, CPU time (user + system) of the run's processes, workers "
             "included, by `getrusage(RUSAGE_CHILDREN)`; the 1-minute load average before and "
             "after each run counts every process on the machine (other work included).", "",
             "| run | wall time | CPU time | load average (before -> after) | checks |",
             "|---|---|---|---|---|"]
    for run in runs:
        label = "serial (`--jobs 1`)" if run["jobs"] == 1 else f"`--jobs {run['jobs']}`"
        lines.append(f"| {label} | {run['seconds']:.1f} s | {run['cpu']:.1f} s | "
                     f"{run['load'][0]:.2f} -> {run['load'][1]:.2f} | "
                     f"{run['summary'].split(' (')[0]} |")
    ratio = runs[0]["seconds"] / runs[1]["seconds"]
    lines += ["", f"**Speed-up** (serial wall time / `--jobs {args.jobs}` wall time): "
              f"**{ratio:.2f}x**.", ""]
    other = runs[0]["load"][0]  # before the first run: other work only
    if other >= 1:
        lines += [f"Before the runs the load average was already {other:.1f} on "
                  f"{os.cpu_count()} cores (other work on the machine): with the cores busy, the "
                  "workers had little idle capacity to use, so this ratio measures that "
                  "contention, not the speed-up on an idle machine.", ""]
    lines += [
              f"**Outputs byte-identical**: {'yes' if not differ else 'NO'} ({len(serial)} "
              f"files compared, figures, data, checks, index and stored cells"
              f"{'' if not differ else '; differing: ' + ', '.join(differ)})."]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, "bench_reproduce", text)


if __name__ == "__main__":
    main()
