"""Dataset loaders: MovieLens-1M (the Distill-CF split), MovieLens-100K (from the recbole wheel's data files),
users' own CSV/TSV interaction lists (``csv:PATH``) and scipy ``.npz`` sparse matrices (``sparse:PATH``).

``ml-1m`` and ``ml-100k`` are downloaded from their official sources when they are not found and downloads are
allowed (:mod:`distill_core.download`: checksummed, never overwriting); otherwise, and for every user file, the
loaders read local files and fail with a message that says where to put them.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import os
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from distill_core.download import DatasetSpec, RemoteFile, ensure_dataset, register_dataset
from distill_core.errors import DataValidationError
from distill_core.files import atomic_write_with
from distill_core.paths import user_data_dir

from .data import InteractionData, SplitProtocol, build_interaction_data

__all__ = ["CSV_HEADERS", "DATASETS", "PREFIXES", "csv_header_kind", "find_root", "load", "load_csv",
           "load_movielens_100k", "load_movielens_1m", "load_sparse_npz"]

logger = logging.getLogger(__name__)

DATASETS = ["ml-1m", "ml-100k"]
PREFIXES = ("csv:", "tsv:", "sparse:", "ml-100k:")
ML1M_FILE = Path("movielens-1m") / "ratings_numpy.npz"
ML100K_WHEEL = "recbole-1.2.1-py3-none-any.whl"
ML100K_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"

# -- downloads ----------------------------------------------------------------------------------------------------
# ML-1M: the ratings from GroupLens (ml-1m.zip) and Distill-CF's split (index.npz at noveens/distill_cf @ fc8b7b9),
# combined into ratings_numpy.npz. GroupLens publishes an md5 for the zip that could not be checked
# offline, so the zip is unverified; instead the combined arrays are checked against the sha256 of their bytes,
# computed from a ratings_numpy.npz built from GroupLens' zip and checked against Distill-CF's originals, so a wrong
# or changed zip is refused before anything is written. index.npz: sha256 of the file at noveens/distill_cf @ fc8b7b9.
_DISTILL_CF = "https://raw.githubusercontent.com/noveens/distill_cf/fc8b7b97725e6ace8f7d39c88f262d888b725e5b"
ML1M_CONTENT_SHA256 = {
    "user": "82dcadc5197457cba14d6a1e914ddac3f623dcae0318e2ddb158ed2fc53d4606",
    "item": "d7fcae1fea1c777d392a40645f305a55c9b3be1982f498cafd82a10ac2fbdcb6",
    "rating": "b62a45fa9a43de910ded15f37e46ec6706ca1a3a5bf86b127c71d298b1f93fec",
    "split": "778d33d356b88e67958b0d164ee2c547a5830c5b14030d561bcef9ad67f9484b",
}
register_dataset(DatasetSpec(
    "ml-1m",
    (
        RemoteFile("movielens-1m/ml-1m.zip", ("https://files.grouplens.org/datasets/movielens/ml-1m.zip",),
                   checksum_source="GroupLens' md5 not checked offline; the ratings read from it are checked "
                                   "against ML1M_CONTENT_SHA256"),
        RemoteFile("movielens-1m/index.npz", (f"{_DISTILL_CF}/data/ml-1m/index.npz",),
                   sha256="de473c335625a0bdb7d011e831426bd140dc205a078bb35cefc83e8ea29a5bd8", size=268362,
                   checksum_source="sha256 of data/ml-1m/index.npz in noveens/distill_cf @ fc8b7b9"),
    ),
    layout="movielens-1m/ratings_numpy.npz (keys user, item, rating, split: the Distill-CF split), or "
           "movielens-1m/ml-1m.zip (GroupLens) with movielens-1m/index.npz (noveens/distill_cf data/ml-1m) from which "
           "it is built",
    licence="GroupLens terms: research use, no redistribution; split: MIT (Distill-CF)",
    source="https://grouplens.org/datasets/movielens/1m/",
    root_hint="--root DIR (or set DISTILL_RECSYS_ROOT)", size="6 MB"))
# ML-100K as this loader defines it (the recbole 1.2.1 data file, whose split the benchmarks use), from PyPI: the
# sha256 is that of the wheel pip downloaded from PyPI (PyPI serves it with its sha256, which pip checked).
ML100K_URL = ("https://files.pythonhosted.org/packages/ab/fe/7d606cb7cd2b166a36b100cb9435d21014ceee16c192d972deb0976967a8/"
              + ML100K_WHEEL)
register_dataset(DatasetSpec(
    "ml-100k",
    (RemoteFile(ML100K_WHEEL, (ML100K_URL,),
                sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407", size=2130151,
                checksum_source="sha256 of the wheel pip downloaded from PyPI"),),
    layout=f"{ML100K_WHEEL} (`pip download --no-deps recbole==1.2.1`; only its {ML100K_MEMBER} is read) or that "
           "ml-100k.inter file",
    licence="GroupLens terms: research use (MovieLens 100K, as shipped by RecBole, MIT)",
    source="https://grouplens.org/datasets/movielens/100k/",
    root_hint="--root DIR (or set DISTILL_RECSYS_ROOT / DISTILL_RECSYS_ML100K)", size="2 MB"))


def _build_ml1m_npz(folder: Path, target: Path) -> None:
    """``ratings_numpy.npz`` from GroupLens' ``ml-1m.zip`` and Distill-CF's ``index.npz`` (in ``folder``), checked
    against :data:`ML1M_CONTENT_SHA256` before it is written (atomically)."""
    fix = f"remove {folder / 'ml-1m.zip'} and {folder / 'index.npz'} to download them again, or provide {target}"
    try:
        with zipfile.ZipFile(folder / "ml-1m.zip") as archive:
            text = archive.read("ml-1m/ratings.dat").decode("latin-1")
        rows = np.array([line.split("::")[:3] for line in text.splitlines() if line.strip()], dtype=np.int64)
        with np.load(folder / "index.npz", allow_pickle=False) as z:
            split = z["data"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DataValidationError(f"cannot build MovieLens-1M from {folder} ({type(exc).__name__}: "
                                  f"{str(exc)[:160]}); {fix}") from exc
    if rows.ndim != 2 or rows.shape[1] != 3 or split.shape != (len(rows),):
        raise DataValidationError(f"MovieLens-1M in {folder}: {rows.shape} ratings and {split.shape} split codes do "
                                  f"not fit together; {fix}")
    arrays = {"user": (rows[:, 0] - 1).astype(np.int32), "item": rows[:, 1].astype(np.int32),
              "rating": rows[:, 2].astype(np.uint8), "split": split.astype(np.uint8)}
    for key, expected in ML1M_CONTENT_SHA256.items():
        actual = hashlib.sha256(arrays[key].tobytes()).hexdigest()
        if actual != expected:
            raise DataValidationError(f"MovieLens-1M built from {folder} does not match Distill-CF's data: {key} has "
                                      f"sha256 {actual}, expected {expected}; {fix}")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    atomic_write_with(target, write)


def find_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data folder: ``root``, else ``$DISTILL_RECSYS_ROOT``, else the user's data folder
    (``$XDG_DATA_HOME/distill``, default ``~/.local/share/distill``)."""
    for candidate in (root, os.environ.get("DISTILL_RECSYS_ROOT"), user_data_dir()):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise DataValidationError(
        "no recommender data folder found: pass --root DIR, or set DISTILL_RECSYS_ROOT to the folder holding "
        f"{ML1M_FILE} (tried {root!r}, $DISTILL_RECSYS_ROOT and {user_data_dir()})")


def load_movielens_1m(root: str | os.PathLike[str] | None = None) -> InteractionData:
    """MovieLens-1M with Distill-CF's shipped train/validation/test split (6,040 users, 3,706 items).

    Reads ``ROOT/movielens-1m/ratings_numpy.npz`` (keys user, item, rating, split; see its SOURCE.md). Every
    rating is a positive (implicit feedback). MovieLens terms: research use, no redistribution.
    """
    try:
        base = find_root(root)
    except DataValidationError:  # no folder yet: the download (if allowed) creates it
        base = Path(root or os.environ.get("DISTILL_RECSYS_ROOT") or user_data_dir())
    path = base / ML1M_FILE if (base / ML1M_FILE).is_file() else base / "ratings_numpy.npz"
    if not path.is_file():
        path = base / ML1M_FILE
        try:
            ensure_dataset("ml-1m", base)
        except DataValidationError as exc:
            raise type(exc)(f"MovieLens-1M not found: expected {path}. {exc}") from None
        _build_ml1m_npz(path.parent, path)
    try:
        with np.load(path) as z:
            missing = {"user", "item", "split"} - set(z.files)
            if missing:
                raise DataValidationError(f"{path} lacks the keys {sorted(missing)}; it is not the Distill-CF ML-1M "
                                          "file (see the SOURCE.md beside it for how it is made)")
            users, items, codes = z["user"], z["item"], z["split"]
            codes = codes.astype(np.int8)
    except DataValidationError:
        raise
    except Exception as exc:  # an untrusted file may fail inside numpy or zipfile in any way
        raise DataValidationError(f"{path} is not a readable .npz file ({type(exc).__name__}: {str(exc)[:200]}); "
                                  "it is corrupt or truncated: copy the Distill-CF ML-1M file again") from exc
    if users.dtype.kind not in "iu" or items.dtype.kind not in "iu":
        raise DataValidationError(f"{path}: user and item ids must be integers, got {users.dtype} and {items.dtype}; "
                                  "it is not the Distill-CF ML-1M file")
    return build_interaction_data("ml-1m", users, items, codes=codes,
                                  extra={"source": str(path), "split_source": "noveens/distill_cf index.npz"})


def _read_inter(text: str, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The user, item and rating columns of a recbole ``.inter`` file (tab-separated, typed header)."""
    fix = "use the ml-100k.inter file of the recbole==1.2.1 wheel (pip download --no-deps recbole==1.2.1)"
    lines = text.split("\n")
    if not text.strip():
        raise DataValidationError(f"{source} is empty; {fix}")
    header = [h.split(":")[0].strip() for h in lines[0].split("\t")]
    try:
        cu, ci, cr = header.index("user_id"), header.index("item_id"), header.index("rating")
    except ValueError as exc:
        raise DataValidationError(f"{source}: header {lines[0][:80]!r} lacks user_id / item_id / rating; {fix}") \
            from exc
    users, items, ratings = [], [], []
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cells = line.split("\t")
        try:
            user, item, rating = int(cells[cu]), int(cells[ci]), float(cells[cr])
        except (IndexError, ValueError) as exc:
            raise DataValidationError(f"{source}: line {number} is not a user_id, item_id, rating row ({exc}); the "
                                      f"file is corrupt or cut off: {fix}") from exc
        if not (0 <= user < 2**63 and 0 <= item < 2**63 and np.isfinite(rating)):
            raise DataValidationError(f"{source}: line {number} has a negative or huge id or a non-finite rating; "
                                      f"{fix}")
        users.append(user)
        items.append(item)
        ratings.append(rating)
    return (np.array(users, dtype=np.int64), np.array(items, dtype=np.int64),
            np.array(ratings, dtype=np.float64))


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
            try:
                with zipfile.ZipFile(cand) as wheel:
                    raw = wheel.read(ML100K_MEMBER)
            except KeyError as exc:
                raise DataValidationError(f"{cand} has no {ML100K_MEMBER}; use recbole==1.2.1's wheel") from exc
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError, ValueError,
                    NotImplementedError) as exc:
                raise DataValidationError(f"{cand} is not a readable wheel ({exc}); download recbole==1.2.1's wheel "
                                          "again") from exc
            source = f"{cand}!{ML100K_MEMBER}"
            break
        if cand.is_file():
            try:
                raw = cand.read_bytes()
            except OSError as exc:
                raise DataValidationError(f"{cand} cannot be read ({exc}); check its permissions") from exc
            source = str(cand)
            break
    else:
        raw, source = _download_ml100k(path, candidates)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataValidationError(f"{source} is not UTF-8 text; use the ml-100k.inter file of recbole==1.2.1") from exc
    users, items, ratings = _read_inter(text, source)
    protocol = protocol or SplitProtocol()
    return build_interaction_data("ml-100k", users, items, ratings=ratings, protocol=protocol,
                                  extra={"source": source})


def _download_ml100k(path: str | os.PathLike[str] | None, candidates: list[Path]) -> tuple[bytes, str]:
    """The ``.inter`` bytes from the recbole wheel, downloaded into the folder that was searched (``path`` when it is
    a folder, else the recommender data root or the user's data folder) when downloads are allowed."""
    folder: Path | None = None
    if path is not None:
        folder = Path(path) if Path(path).is_dir() else None
    elif not os.environ.get("DISTILL_RECSYS_ML100K"):
        try:
            folder = find_root(None)
        except DataValidationError:
            folder = Path(os.environ.get("DISTILL_RECSYS_ROOT") or user_data_dir())
    if folder is None:
        raise DataValidationError(
            "MovieLens-100K not found: run `pip download --no-deps recbole==1.2.1 -d DIR` and pass the wheel (or "
            f"its {ML100K_MEMBER}) as `--dataset ml-100k:PATH` or set DISTILL_RECSYS_ML100K; tried "
            f"{[str(c) for c in candidates]}")
    try:
        wheel = ensure_dataset("ml-100k", folder) / ML100K_WHEEL
    except DataValidationError as exc:
        raise type(exc)(f"MovieLens-100K not found (tried {[str(c) for c in candidates]}). {exc}") from None
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(ML100K_MEMBER), f"{wheel}!{ML100K_MEMBER}"
    except (KeyError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataValidationError(f"{wheel} is not a readable recbole 1.2.1 wheel ({exc}); remove it to download "
                                  "it again") from exc


#: the header rows a CSV/TSV interaction file may start with (matched case-insensitively, cells stripped)
CSV_HEADERS = (("user", "item"), ("user", "item", "rating"))
_CSV_FIX = "write the header user,item or user,item,rating as its first line (a file without a header must " \
           "hold integer user and item ids)"
_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)
#: bytes read to find a file's first line in :func:`csv_header_kind`
_SNIFF_BYTES = 1 << 16


def _delimiter(first_line: str) -> str:
    """Tab, semicolon or comma, from the first non-blank line."""
    return "\t" if "\t" in first_line else ";" if ";" in first_line and "," not in first_line else ","


def _open_text(path: Path) -> str:
    """The UTF-8 text of ``path`` (gzip-compressed when it ends in ``.gz``).

    Raises:
        DataValidationError: unreadable, not gzip although named ``.gz``, binary (NUL bytes) or not UTF-8.
    """
    fix = "save it as a UTF-8 CSV/TSV text file of user,item[,rating] rows"
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                raw = handle.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataValidationError(f"{path} cannot be read ({exc}); {fix}") from exc
    if b"\x00" in raw:
        raise DataValidationError(f"{path} is a binary file (it holds NUL bytes), not CSV/TSV text; {fix}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataValidationError(f"{path} is not UTF-8 text (undecodable byte at offset {exc.start}); {fix}") \
            from exc


def _first_line(text: str) -> str | None:
    """The first non-blank line (split at newlines only, as the csv reader does), or ``None``."""
    return next((line for line in text.split("\n") if line.strip()), None)


def _cells(line: str, delimiter: str) -> list[str]:
    try:
        cells = next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        cells = line.split(delimiter)
    return [c.strip() for c in cells]


def _header_kind(cells: list[str]) -> str:
    """``"header"`` (user,item[,rating]), ``"ids"`` (a header-less row of integer ids) or ``"other"``."""
    if tuple(c.lower() for c in cells) in CSV_HEADERS:
        return "header"
    if len(cells) in (2, 3) and all(_INTEGER.fullmatch(c) for c in cells[:2]):
        return "ids"
    return "other"


def csv_header_kind(path: str | os.PathLike[str]) -> str:
    """What the first non-blank line of a CSV/TSV file says about it (only the file's start is read).

    Returns:
        ``"header"`` (the interaction header user,item[,rating]), ``"ids"`` (no header: a row of integer user and
        item ids), ``"text"`` (a header with ``text`` and ``label`` columns: labelled texts, which distill-text
        reads), ``"other"`` (any other first line) or ``"unreadable"`` (missing, empty, binary or not UTF-8).
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                raw = handle.read(_SNIFF_BYTES)
        else:
            with open(path, "rb") as handle:
                raw = handle.read(_SNIFF_BYTES)
        line = next((ln for ln in raw.removeprefix(b"\xef\xbb\xbf").split(b"\n") if ln.strip()), b"")
        if not line or b"\x00" in line:
            return "unreadable"
        text = line.decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError):
        return "unreadable"
    cells = _cells(text, _delimiter(text))
    kind = _header_kind(cells)
    if kind == "other" and {"text", "label"} <= {c.lower() for c in cells}:
        return "text"
    return kind


def _parse_interactions(text: str, source: Path) -> tuple[list[str], list[str], np.ndarray | None]:
    """Rows of an interaction CSV/TSV: ``(users, items, ratings or None)``; see :func:`load_csv`."""
    first = _first_line(text)
    if first is None:
        raise DataValidationError(f"{source} is empty; it needs user,item[,rating] rows")
    delimiter = _delimiter(first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    kind, width = "", 0
    users: list[str] = []
    items: list[str] = []
    rating_cells: list[tuple[int, str]] = []
    try:
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            line = reader.line_num
            if not kind:
                cells = [c.strip() for c in row]
                kind, width = _header_kind(cells), len(cells)
                if kind == "other":
                    shown = delimiter.join(cells)
                    raise DataValidationError(f"{source}: the first line {shown[:80]!r} is neither the header "
                                              f"user,item[,rating] nor a row of integer ids; {_CSV_FIX}")
                if kind == "header":
                    continue
            if len(row) != width:
                raise DataValidationError(f"{source}: line {line} has {len(row)} column(s) but the file has {width} "
                                          f"({','.join(CSV_HEADERS[width - 2])}); fix or drop that line (a cut-off "
                                          "file ends in a short line)")
            user, item = row[0].strip(), row[1].strip()
            if not user or not item:
                raise DataValidationError(f"{source}: line {line} has an empty user or item cell; every row needs "
                                          "both ids")
            if kind == "ids" and not (_INTEGER.fullmatch(user) and _INTEGER.fullmatch(item)):
                bad = item if _INTEGER.fullmatch(user) else user
                raise DataValidationError(f"{source}: line {line} has the id {bad[:40]!r}, but a file without a "
                                          f"header must hold integer ids; {_CSV_FIX}")
            users.append(user)
            items.append(item)
            if width == 3:
                rating_cells.append((line, row[2].strip()))
    except csv.Error as exc:
        raise DataValidationError(f"{source}: not a readable CSV/TSV file (line {reader.line_num}: {exc}); "
                                  "write one user,item[,rating] row per line") from exc
    if not users:
        raise DataValidationError(f"{source} has a header but no interactions; add user,item[,rating] rows")
    return users, items, _ratings(rating_cells, source) if width == 3 else None


def _ratings(cells: list[tuple[int, str]], source: Path) -> np.ndarray:
    """Ratings as float64; NaN, infinite, negative or non-numeric ratings are refused (every rating counts as a
    positive, so a NaN would silently become one)."""
    values = np.empty(len(cells), dtype=np.float64)
    for i, (line, cell) in enumerate(cells):
        try:
            values[i] = float(cell)
        except ValueError as exc:
            raise DataValidationError(f"{source}: line {line} has the rating {cell!r:.40}, not a number; ratings "
                                      "must be numbers >= 0 (or drop the rating column)") from exc
    for bad, what in ((np.isnan(values), "NaN"), (np.isinf(values), "infinite"), (values < 0, "negative")):
        if bad.any():
            first = cells[int(np.argmax(bad))][0]
            raise DataValidationError(f"{source}: {int(bad.sum())} of {len(values)} rows have a {what} rating (first "
                                      f"on line {first}); every rated row counts as a positive, so fill in or drop "
                                      "those rows (ratings must be finite numbers >= 0)")
    return values


def load_csv(path: str | os.PathLike[str], *, name: str | None = None,
             protocol: SplitProtocol | None = None) -> InteractionData:
    """A user's own interactions: CSV or TSV rows ``user,item[,rating]``.

    The first line is the header ``user,item`` or ``user,item,rating`` (case-insensitive). A file without a header
    is read only when its first row holds integer user and item ids, and then every id must be an integer; any
    other first line is refused (it would otherwise become an interaction). With a header, ids may be integers or
    strings; they are remapped to contiguous indices and the originals kept (exports use them). The delimiter
    (comma, tab, semicolon) is detected from the first line; a ``.gz`` file is decompressed. Every row must have
    the header's number of columns; ratings must be finite numbers >= 0.

    Raises:
        DataValidationError: a missing, empty, binary or non-UTF-8 file, another header, short or long rows, empty
            ids, non-integer ids without a header, or NaN / infinite / negative / non-numeric ratings.
    """
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"interaction file {path} does not exist; pass csv:PATH to a CSV/TSV of "
                                  "user,item[,rating] rows")
    users, items, ratings = _parse_interactions(_open_text(path), path)
    return build_interaction_data(name or f"csv:{path}", _ids(users, "user", path), _ids(items, "item", path),
                                  ratings=ratings, protocol=protocol or SplitProtocol(), extra={"source": str(path)})


def _ids(values: list[str], what: str, source: Path) -> np.ndarray:
    """Integer ids as int64 when every one is an integer that fits; otherwise the strings themselves."""
    if all(_INTEGER.fullmatch(v) for v in values):
        negative = [v for v in values if v.startswith("-")]
        if negative:
            raise DataValidationError(f"{source}: {len(negative)} negative {what} ids (first {negative[0][:40]}); "
                                      "ids must be >= 0 (or strings)")
        numbers = [int(v) for v in values]
        if max(numbers) < 2**63:
            return np.array(numbers, dtype=np.int64)
    return np.array(values, dtype=np.str_)


def load_sparse_npz(path: str | os.PathLike[str], *, name: str | None = None,
                    protocol: SplitProtocol | None = None) -> InteractionData:
    """A users x items matrix saved with ``scipy.sparse.save_npz``; rows/columns are the ids (empty users and
    items are dropped with a warning) and the paper's split is applied.

    Every stored nonzero value is a positive (implicit feedback); explicit zeros are ignored.

    Raises:
        DataValidationError: a missing file, one that is not a readable scipy.sparse ``.npz`` matrix (corrupt,
            truncated, a plain ``numpy.savez`` archive, pickled objects), entries outside its shape, or values
            that are not finite real numbers >= 0.
    """
    path = Path(path)
    fix = "write it with scipy.sparse.save_npz(path, matrix) from a users x items matrix"
    if not path.is_file():
        raise DataValidationError(f"sparse matrix file {path} does not exist; {fix}")
    try:
        matrix = sp.load_npz(path)
        if not sp.issparse(matrix) or len(matrix.shape) != 2:
            raise ValueError(f"a {len(matrix.shape)}-D array, not a users x items matrix")
        coo = matrix.tocoo()
        rows, cols, values = np.asarray(coo.row, np.int64), np.asarray(coo.col, np.int64), np.asarray(coo.data)
        n_rows, n_cols = (int(n) for n in coo.shape)
    except Exception as exc:  # an untrusted file may fail inside numpy, zipfile or scipy in any way
        raise DataValidationError(f"{path} is not a readable scipy.sparse .npz matrix ({type(exc).__name__}: "
                                  f"{str(exc)[:200]}); {fix}") from exc
    if values.dtype.kind not in "biuf":
        raise DataValidationError(f"{path} holds {values.dtype} values; implicit feedback needs real numbers >= 0 "
                                  f"({fix})")
    if len(rows) and (rows.min() < 0 or cols.min() < 0 or rows.max() >= n_rows or cols.max() >= n_cols):
        raise DataValidationError(f"{path} has entries outside its {n_rows} x {n_cols} shape (the file is corrupt); "
                                  f"{fix}")
    values = values.astype(np.float64)
    for bad, what in ((~np.isfinite(values), "NaN/Inf"), (values < 0, "negative")):
        if bad.any():
            raise DataValidationError(f"{path} has {int(bad.sum())} {what} values; implicit feedback must be finite "
                                      "and >= 0 (drop negative feedback or shift the ratings first)")
    nonzero = values != 0
    rows, cols = rows[nonzero], cols[nonzero]
    empty_users = n_rows - len(np.unique(rows))
    empty_items = n_cols - len(np.unique(cols))
    if empty_users or empty_items:
        logger.warning("%s: dropped %d empty users and %d empty items", path, empty_users, empty_items)
    return build_interaction_data(name or f"sparse:{path}", rows, cols, protocol=protocol or SplitProtocol(),
                                  extra={"source": str(path)})


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
