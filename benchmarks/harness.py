"""What every benchmark runner shares: cells in fresh processes, peak memory, machine context, result files and
markdown tables. The runners keep only what is particular to their modality (budgets, protocols, columns, notes).

Runners are run as scripts (``python benchmarks/vision/run.py ...``) and import this module after putting the
``benchmarks`` folder on ``sys.path``::

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import harness  # noqa: E402

- **cells**: :func:`run_cell` runs ``python SCRIPT ARGS...`` in a fresh process and returns the JSON object the
  cell printed last (:func:`emit`), so a cell's peak memory is its own;
- **memory**: :func:`peak_rss_mb`, the one measure of peak memory used by every runner: ``ru_maxrss`` of the
  process the cell ran in (a measure of growth is two readings of it);
- **context**: :func:`machine_context` (1-minute load average, torch threads, CPU count), recorded with every cell;
  :func:`machine` describes the software and hardware once per results file;
- **storage**: JSON lines (:func:`read_jsonl`, :func:`append_jsonl`), JSON files written atomically
  (:func:`load_json`, :func:`save_json`), one JSON file per cell (:func:`read_cells`, :func:`write_cell`), and
  :func:`merge_row` / :func:`latest` to keep the newest row per key;
- **tables**: :func:`md_table` from rows and a column spec, :func:`write_markdown`;
- **data**: :func:`data_root` resolves a data folder from a flag or an environment variable and stops with a message
  that says how to give it; no runner knows where the data lives on a machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

Row = dict[str, Any]
#: a column of :func:`md_table`: its header and either a row key (the cell is ``str(row[key])``) or a function
Column = tuple[str, "str | Callable[[Any], object]"]

#: the coreset baselines every table lists beside the distilled rows (registered methods with no outer steps)
CORESETS = ("random", "herding", "kcenter")
#: parent of per-dataset folders (``$DISTILL_DATA_ROOT/mnist``, ``.../planetoid``, ...), a fallback for every runner
DATA_ROOT_ENV = "DISTILL_DATA_ROOT"


# -- data ---------------------------------------------------------------------------------------------------------
def data_root(given: str | os.PathLike[str] | None, *, env: str | None = None, sub: str = "",
              what: str = "the data", flag: str = "--root") -> str:
    """The folder holding ``what``: ``given`` (the runner's flag), else ``$env``, else ``$DISTILL_DATA_ROOT/sub``.

    Raises:
        SystemExit: none of them is set, or the folder found does not exist (the message names the flag and the
            variables to set).
    """
    tried = []
    for source, value in ((flag, given), (f"${env}", os.environ.get(env) if env else None),
                          (f"${DATA_ROOT_ENV}/{sub}".rstrip("/"),
                           str(Path(os.environ[DATA_ROOT_ENV]) / sub) if os.environ.get(DATA_ROOT_ENV) else None)):
        if not value:
            continue
        if Path(value).is_dir():
            return str(value)
        tried.append(f"{source}={value} (no such folder)")
    hint = f"pass {flag}{'' if flag.endswith('=') else ' '}DIR" + (f", set {env}=DIR" if env else "") + \
        f" or set {DATA_ROOT_ENV} to the folder that holds {sub + '/' if sub else 'it'}"
    raise SystemExit(f"{what}: no data folder; {hint}" + (f"; tried {', '.join(tried)}" if tried else ""))


def named_roots(specs: Sequence[str] | None, names: Iterable[str], *, envs: Mapping[str, str] | None = None,
                what: str = "dataset") -> dict[str, str]:
    """Per-dataset folders from ``--root NAME=DIR`` flags (a bare ``DIR`` when there is one name), else the name's
    variable in ``envs``, else ``$DISTILL_DATA_ROOT/NAME``; stops with a message for the first one missing."""
    names = list(names)
    given: dict[str, str] = {}
    for spec in specs or []:
        name, sep, folder = spec.partition("=")
        if not sep:
            if len(names) != 1:
                raise SystemExit(f"--root {spec}: give NAME=DIR for each of {names}")
            name, folder = names[0], spec
        given[name] = folder
    return {name: data_root(given.get(name), env=(envs or {}).get(name), sub=name, what=f"{what} {name}",
                            flag=f"--root {name}=") for name in names}


# -- memory and machine -------------------------------------------------------------------------------------------
def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _torch_threads() -> int | None:
    torch = sys.modules.get("torch")
    return None if torch is None else int(torch.get_num_threads())


def machine_context() -> Row:
    """What the machine was doing when a cell ran: 1-minute load average, torch threads, CPU count."""
    return {"load_avg_1min": round(os.getloadavg()[0], 1), "threads": _torch_threads(), "cpu_count": os.cpu_count()}


def cell_context() -> Row:
    """:func:`machine_context` and the process's peak RSS (MB, whole number), for the end of a cell."""
    return {"peak_rss_mb": round(peak_rss_mb()), **machine_context()}


def machine() -> Row:
    """The software and hardware (once per results file)."""
    torch = sys.modules.get("torch")
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch": None if torch is None else torch.__version__, "python": platform.python_version()}


def set_threads(default: int, env: str = "DISTILL_THREADS") -> int:
    """``torch.set_num_threads($env or default)``; returns the number set."""
    import torch

    torch.set_num_threads(int(os.environ.get(env, str(default))))
    return torch.get_num_threads()


# -- cells in fresh processes -------------------------------------------------------------------------------------
class CellFailed(RuntimeError):
    """A cell process exited with an error (the message ends with its stderr)."""


def cell_commands(doc: str, *, cells_help: str,
                  cell_options: Callable[[argparse.ArgumentParser], None]) -> argparse.Namespace:
    """The command line of a seeded-cell runner: ``run --cells ... --seeds ...`` (one subprocess per cell and
    seed), ``cell`` (one cell, its own options added by ``cell_options``) and ``table``, with the CPU profile's
    shared options (dataset, outer steps, evaluation epochs and models, data root)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "cell"):
        p = sub.add_parser(name)
        p.add_argument("--dataset", default="fashion-mnist")
        p.add_argument("--steps", type=int, default=200)
        p.add_argument("--eval-epochs", type=int, default=300)
        p.add_argument("--models", type=int, default=3)
        p.add_argument("--root")
        if name == "run":
            p.add_argument("--cells", nargs="+", required=True, help=cells_help)
            p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        else:
            cell_options(p)
            p.add_argument("--seed", type=int, default=0)
    sub.add_parser("table")
    return parser.parse_args()


def run_cell(script: str | os.PathLike[str], *args: object, env: Mapping[str, str] | None = None,
             check: bool = True) -> Row | None:
    """Run ``python SCRIPT ARGS...`` in a fresh process (so its peak memory is its own) and return the JSON object
    on the last line of its stdout (see :func:`emit`). ``script`` may be ``"-c"`` with the code as first arg.

    A failed cell raises :class:`CellFailed` when ``check``, else prints its stderr's tail and returns None.
    """
    cmd = [sys.executable, str(script), *(str(a) for a in args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=None if env is None else {**os.environ, **env})
    if proc.returncode != 0:
        message = f"cell {' '.join(cmd[1:])[:300]} exited with {proc.returncode}:\n{proc.stderr[-3000:]}"
        if check:
            raise CellFailed(message)
        print(message, file=sys.stderr, flush=True)
        return None
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise CellFailed(f"cell {' '.join(cmd[1:])[:300]} printed no result")
    return json.loads(lines[-1])


def emit(row: Mapping[str, Any]) -> None:
    """Print a cell's result as the one JSON line :func:`run_cell` reads."""
    print(json.dumps(row), flush=True)


# -- result files ------------------------------------------------------------------------------------------------
def read_jsonl(path: Path) -> list[Row]:
    """The rows of a JSON-lines file (none when it does not exist)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_jsonl(path: Path, row: Mapping[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")


def load_json(path: Path, default: Any = None) -> Any:
    """The JSON in ``path``, or ``default()`` (a callable) / ``default`` when the file does not exist."""
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return default() if callable(default) else default


def save_json(path: Path, value: Any, *, indent: int = 1) -> None:
    """Write ``value`` to ``path`` atomically (a cut run leaves the old file or the new one, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=indent) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_cells(folder: Path) -> list[Row]:
    """Every cell stored as one JSON file in ``folder`` (sorted by file name)."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]


def write_cell(folder: Path, tag: str, row: Mapping[str, Any]) -> Path:
    """Store one cell as ``folder/TAG.json`` (replacing an earlier run of the same cell)."""
    path = folder / f"{tag}.json"
    save_json(path, row)
    return path


def row_key(row: Mapping[str, Any], keys: Sequence[str]) -> tuple[Any, ...]:
    return tuple(row.get(k) for k in keys)


def merge_row(rows: list[Row], row: Row, keys: Sequence[str]) -> None:
    """Replace the row with the same ``keys`` values (or add it); the new row goes last."""
    rows[:] = [r for r in rows if row_key(r, keys) != row_key(row, keys)]
    rows.append(row)


def latest(rows: Iterable[Row], keys: Sequence[str]) -> dict[tuple[Any, ...], Row]:
    """The last row for each ``keys`` value (rows are appended, so the last is the newest)."""
    out: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        out[row_key(row, keys)] = row
    return out


# -- markdown -----------------------------------------------------------------------------------------------------
def md_table(columns: Sequence[Column], rows: Iterable[Any], *, compact: bool = False) -> list[str]:
    """A markdown table: a header, the rule (``|---|`` when ``compact``, else ``| --- |``) and a line per row.

    Each column is ``(header, key)`` (the cell is ``str(row[key])``) or ``(header, function of the row)``.
    """
    getters = [(lambda r, k=spec: r[k]) if isinstance(spec, str) else spec for _, spec in columns]
    rule = "|" + "---|" * len(columns) if compact else "| " + " | ".join("---" for _ in columns) + " |"
    lines = ["| " + " | ".join(header for header, _ in columns) + " |", rule]
    lines += ["| " + " | ".join(str(get(row)) for get in getters) + " |" for row in rows]
    return lines


def write_markdown(path: Path, lines: Sequence[str]) -> None:
    """Write ``lines`` as one file ending in a newline."""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
