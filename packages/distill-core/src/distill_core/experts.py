"""Expert trajectories: networks trained on the real data whose parameters after every epoch are kept on disk, the
targets of trajectory matching (MTT, Cazenavette et al., CVPR 2022, https://arxiv.org/abs/2203.11932; TESLA; DATM).

An :class:`ExpertStore` is a folder::

    manifest.json                      protocol, architecture, dataset fingerprint, parameter shapes, versions
    expert-0000/epoch-000.safetensors  expert 0 at initialisation
    expert-0000/epoch-001.safetensors  ... after every epoch
    expert-0001/...

Every shard is written atomically and holds one expert's parameters (plus SGD momentum buffers and module buffers
when there are any) at one epoch, so a killed build resumes at the last finished epoch of each expert and gives the
same trajectory as an uninterrupted one (each expert's initialisation and each epoch's shuffling and augmentation
are seeded by ``(protocol seed, expert, epoch)``). Only the epochs a run can sample need to exist: the store is
built incrementally (:func:`build_experts` adds missing experts and epochs).

A store belongs to one dataset (name, shapes and a content hash of the preprocessed training split, so ZCA or not
matters) and one :class:`ExpertProtocol`; opening it with another is refused, never silently reused. Without an
explicit folder the store lives in the user's cache, keyed by both (:meth:`ExpertStore.default_root`), so every
later run with the same data and protocol reuses it.

The protocol defaults are the papers': plain SGD at lr 0.01, no momentum, no weight decay, batches of 256 (MTT's
``buffer.py``; its author: constant-lr SGD without momentum is easier for the student to imitate).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from .data import RealData, data_fingerprint
from .distributed import barrier, shard_items, world
from .errors import DataValidationError
from .files import atomic_write_with
from .stores import default_store_root, open_store_manifest

if TYPE_CHECKING:
    from .modality import Modality

__all__ = ["FORMAT", "ExpertProtocol", "ExpertStore", "build_experts", "train_expert"]

logger = logging.getLogger(__name__)

FORMAT = "distill-experts/1"
_EPOCH_FILE = re.compile(r"^epoch-(\d{3,})\.safetensors$")


@dataclass(frozen=True)
class ExpertProtocol:
    """How the experts are trained. Part of the store's identity: another protocol means another store.

    Args:
        model: the modality's architecture name (the student of trajectory matching uses the same).
        model_kwargs: its keyword arguments (e.g. ``{"width": 32}``).
        lr: SGD learning rate (constant).
        momentum: SGD momentum (the papers: 0).
        weight_decay: SGD weight decay (the papers: 0).
        batch_size: minibatch size over the real training split.
        augment: the modality's augmentation name applied to every batch (``"dsa"`` for images), or ``None``.
        seed: seeds every expert's initialisation and every epoch's order and augmentation.
    """

    model: str = "convnet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 256
    augment: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [(math.isfinite(self.lr) and self.lr > 0, f"lr must be > 0, got {self.lr}"),
                  (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
                  (math.isfinite(self.weight_decay) and self.weight_decay >= 0,
                   f"weight_decay must be >= 0, got {self.weight_decay}"),
                  (isinstance(self.batch_size, int) and self.batch_size >= 1,
                   f"batch_size must be an integer >= 1, got {self.batch_size}"),
                  (isinstance(self.seed, int) and self.seed >= 0, f"seed must be an integer >= 0, got {self.seed}")]
        for ok, message in checks:
            if not ok:
                raise DataValidationError(f"expert protocol: {message}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExpertProtocol:
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})

    def key(self) -> str:
        """A hash of the protocol (hex), part of the default store folder's name."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _expert_seed(protocol: ExpertProtocol, expert: int, epoch: int) -> int:
    return (protocol.seed * 1_000_003 + expert * 10_007 + epoch * 101 + 17) % (2**63 - 1)


def _versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"torch": torch.__version__}
    try:
        versions["distill-core"] = metadata.version("distill-core")
    except metadata.PackageNotFoundError:
        pass
    return versions


class ExpertStore:
    """A folder of expert trajectories for one dataset and one :class:`ExpertProtocol` (see the module docstring).

    Use :meth:`open` to create or check one; :meth:`load` to read the parameters of an expert at an epoch.
    """

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest
        self.protocol = ExpertProtocol.from_dict(manifest["protocol"])
        self._cache: OrderedDict[tuple[int, int], dict[str, torch.Tensor]] = OrderedDict()

    # -- opening ------------------------------------------------------------------------------------------------
    @staticmethod
    def default_root(data: RealData, protocol: ExpertProtocol) -> Path:
        """``<user cache>/experts/<dataset>-<content hash>-<protocol hash>``: one store per data and protocol."""
        return default_store_root("experts", data, protocol.key())

    @classmethod
    def open(cls, root: str | os.PathLike[str] | None, *, data: RealData, protocol: ExpertProtocol,
             param_shapes: dict[str, list[int]]) -> ExpertStore:
        """Open the store at ``root`` (``None``: :meth:`default_root`), creating its manifest when the folder is
        new or empty.

        Raises:
            DataValidationError: the folder holds a store of another dataset, protocol or architecture (the
                message names what differs), or something that is not a store.
        """
        path = Path(root) if root is not None else cls.default_root(data, protocol)
        wanted = {"format": FORMAT, "protocol": protocol.to_dict(), "dataset": data_fingerprint(data),
                  "param_shapes": param_shapes}
        rank, size = world()
        if size > 1 and rank != 0:
            barrier()  # under torchrun, rank 0 creates (or checks) the manifest before the others read it
        manifest = open_store_manifest(path, what="expert store", wanted=wanted,
                                       check=lambda stored: cls._check_match(path, stored, wanted),
                                       extra={"versions": _versions(), "floats_per_epoch":
                                              int(sum(math.prod(s) for s in param_shapes.values()))})
        if size > 1 and rank == 0:
            barrier()
        return cls(path, manifest)

    @staticmethod
    def _check_match(path: Path, manifest: dict[str, Any], wanted: dict[str, Any]) -> None:
        if manifest.get("format") != FORMAT:
            raise DataValidationError(f"{path} holds format {manifest.get('format')!r}, not {FORMAT!r}; rebuild the "
                                      "experts in a new folder")
        stored_ds, want_ds = manifest.get("dataset") or {}, wanted["dataset"]
        if stored_ds != want_ds:
            diff = sorted(k for k in stored_ds.keys() | want_ds.keys() if stored_ds.get(k) != want_ds.get(k))
            raise DataValidationError(
                f"the expert store {path} was trained on another dataset ({stored_ds.get('name')!r}, "
                f"{stored_ds.get('n_train')} training samples; differs in {diff}) than this run's "
                f"{want_ds.get('name')!r}; experts are never reused across datasets or preprocessing (+zca). Leave "
                "--experts out to use this dataset's own store, or pass a new folder")
        stored_pr, want_pr = manifest.get("protocol") or {}, wanted["protocol"]
        if stored_pr != json.loads(json.dumps(want_pr)):
            diff = sorted(k for k in stored_pr.keys() | want_pr.keys()
                          if json.loads(json.dumps(want_pr.get(k))) != stored_pr.get(k))
            raise DataValidationError(
                f"the expert store {path} was trained with another expert protocol (differs in {diff}: stored "
                f"{ {k: stored_pr.get(k) for k in diff} }, wanted { {k: want_pr.get(k) for k in diff} }); use the "
                "same settings, leave --experts out, or pass a new folder")
        if manifest.get("param_shapes") != wanted["param_shapes"]:
            raise DataValidationError(f"the expert store {path} holds another architecture's parameters than the "
                                      "student network; use the same model and model_kwargs, or a new folder")

    # -- contents -----------------------------------------------------------------------------------------------
    def expert_dir(self, expert: int) -> Path:
        return self.root / f"expert-{expert:04d}"

    def epoch_path(self, expert: int, epoch: int) -> Path:
        return self.expert_dir(expert) / f"epoch-{epoch:03d}.safetensors"

    def epochs_of(self, expert: int) -> int:
        """The last epoch ``e`` such that epochs ``0..e`` of ``expert`` exist (``-1``: not even its start)."""
        folder = self.expert_dir(expert)
        if not folder.is_dir():
            return -1
        have = {int(m.group(1)) for f in folder.iterdir() if (m := _EPOCH_FILE.match(f.name))}
        last = -1
        while last + 1 in have:
            last += 1
        return last

    def experts(self) -> list[int]:
        """Indices of the experts with at least their starting point."""
        found = sorted(int(d.name.split("-")[1]) for d in self.root.glob("expert-*") if d.is_dir()
                       and d.name.split("-")[1].isdigit())
        return [k for k in found if self.epochs_of(k) >= 0]

    def usable(self, epochs: int) -> list[int]:
        """Experts that reach at least ``epochs`` epochs."""
        return [k for k in self.experts() if self.epochs_of(k) >= epochs]

    def bytes_per_epoch(self) -> int:
        return 4 * int(self.manifest.get("floats_per_epoch", 0))

    def describe(self) -> dict[str, Any]:
        experts = self.experts()
        disk = sum(f.stat().st_size for f in self.root.rglob("*.safetensors"))
        return {"root": str(self.root), "protocol": self.protocol.to_dict(),
                "dataset": self.manifest["dataset"]["name"], "experts": len(experts),
                "epochs_per_expert": {str(k): self.epochs_of(k) for k in experts},
                "bytes_per_epoch": self.bytes_per_epoch(), "disk_bytes": disk,
                "disk_mb_per_expert": round(disk / max(1, len(experts)) / 2**20, 2)}

    # -- shards -------------------------------------------------------------------------------------------------
    def save(self, expert: int, epoch: int, tensors: dict[str, torch.Tensor]) -> Path:
        path = self.epoch_path(expert, epoch)
        flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
        meta = {"format": FORMAT, "expert": str(expert), "epoch": str(epoch), "protocol": self.protocol.key()}
        return atomic_write_with(path, lambda tmp: save_file(flat, str(tmp), metadata=meta))

    def read(self, expert: int, epoch: int) -> dict[str, torch.Tensor]:
        """All tensors of one shard (``param.*``, and ``momentum.*`` / ``buffer.*`` where present)."""
        path = self.epoch_path(expert, epoch)
        if not path.is_file():
            have = self.epochs_of(expert)
            raise DataValidationError(
                f"the expert store {self.root} lacks epoch {epoch} of expert {expert} (it has epochs 0..{have}); "
                f"build it with `distill experts ... --epochs {epoch}` or let `distill run` build what is missing")
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                if meta.get("format") != FORMAT or meta.get("protocol") != self.protocol.key():
                    raise DataValidationError(f"{path} does not belong to this expert store (format/protocol "
                                              "mismatch); delete it to rebuild that epoch")
                return {k: handle.get_tensor(k) for k in handle.keys()}
        except SafetensorError as exc:
            raise DataValidationError(f"{path} is corrupt ({exc}); delete it and rebuild that epoch with "
                                      "`distill experts`") from exc

    def load(self, expert: int, epoch: int) -> dict[str, torch.Tensor]:
        """The parameters ``{name: tensor}`` of ``expert`` after ``epoch`` epochs (epoch 0: its initialisation);
        a small in-memory cache keeps the last shards read."""
        key = (expert, epoch)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        params = {k[len("param."):]: v for k, v in self.read(expert, epoch).items() if k.startswith("param.")}
        self._cache[key] = params
        while len(self._cache) > 16:
            self._cache.popitem(last=False)
        return params


def _param_shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    return {name: list(p.shape) for name, p in model.named_parameters()}


def open_store(root: str | os.PathLike[str] | None, *, data: RealData, modality: Modality,
               protocol: ExpertProtocol) -> ExpertStore:
    """:meth:`ExpertStore.open` with the parameter shapes of ``protocol.model`` built by ``modality``."""
    model = modality.build_model(protocol.model, sample_shape=data.sample_shape, num_classes=data.num_classes,
                                 **protocol.model_kwargs)
    return ExpertStore.open(root, data=data, protocol=protocol, param_shapes=_param_shapes(model))


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def train_expert(store: ExpertStore, expert: int, *, epochs: int, data: RealData, modality: Modality,
                 device: torch.device | str = "cpu", progress: bool = False) -> None:
    """Train expert ``expert`` until ``epochs`` epochs exist in ``store``, continuing from its last saved epoch.

    Epoch 0 is the initialisation (seeded by the protocol seed and the expert index); each later epoch is one
    shuffled pass over the training split with the protocol's SGD and augmentation, seeded by ``(seed, expert,
    epoch)``, so a resumed expert equals an uninterrupted one.
    """
    protocol, device = store.protocol, torch.device(device)
    have = store.epochs_of(expert)
    if have >= epochs:
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_expert_seed(protocol, expert, 0))
        model = modality.build_model(protocol.model, sample_shape=data.sample_shape, num_classes=data.num_classes,
                                     **protocol.model_kwargs).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=protocol.lr, momentum=protocol.momentum,
                                weight_decay=protocol.weight_decay)
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())

    def snapshot() -> dict[str, torch.Tensor]:
        out = {f"param.{k}": v for k, v in params.items()}
        out.update({f"buffer.{k}": v for k, v in buffers.items()})
        if protocol.momentum > 0:
            for k, p in params.items():
                buf = optimizer.state.get(p, {}).get("momentum_buffer")
                out[f"momentum.{k}"] = torch.zeros_like(p) if buf is None else buf
        return out

    if have < 0:
        store.save(expert, 0, snapshot())
        have = 0
    else:  # resume from the last finished epoch
        saved = store.read(expert, have)
        with torch.no_grad():
            for k, p in params.items():
                p.copy_(saved[f"param.{k}"])
            for k, b in buffers.items():
                if f"buffer.{k}" in saved:
                    b.copy_(saved[f"buffer.{k}"])
        if protocol.momentum > 0:
            for k, p in params.items():
                optimizer.state[p]["momentum_buffer"] = saved[f"momentum.{k}"].to(device).clone()
    augment = modality.augmenter(protocol.augment)
    n = len(data.y_train)
    for epoch in tqdm(range(have + 1, epochs + 1), desc=f"expert {expert}", disable=not progress, leave=False):
        generator = torch.Generator().manual_seed(_expert_seed(protocol, expert, epoch))
        model.train()
        for idx in _batches(n, protocol.batch_size, generator):
            x = data.x_train[idx].to(device)
            y = data.y_train[idx].to(device)
            if augment is not None:
                x = augment(x, generator)
            loss = F.cross_entropy(model(x), y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"expert {expert} diverged in epoch {epoch} (loss {float(loss)}); lower the "
                                         f"expert learning rate (now {protocol.lr})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        store.save(expert, epoch, snapshot())


def _worker(args: tuple[str, int, int, RealData, str, str, str, int]) -> int:
    root, expert, epochs, data, modality_module, modality_name, device, threads = args
    import importlib

    from .registry import get_modality

    importlib.import_module(modality_module)  # registers a modality that is not an entry point (tests' toy one)
    torch.set_num_threads(threads)
    modality = get_modality(modality_name)
    manifest = json.loads((Path(root) / "manifest.json").read_text(encoding="utf-8"))
    train_expert(ExpertStore(Path(root), manifest), expert, epochs=epochs, data=data, modality=modality,
                 device=device)
    return expert


def build_experts(store: ExpertStore, *, n: int, epochs: int, data: RealData, modality: Modality,
                  workers: int = 1, device: torch.device | str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Make experts ``0..n-1`` reach ``epochs`` epochs in ``store``, training only what is missing.

    With ``workers > 1`` the experts train in parallel worker processes (``torch.multiprocessing``, spawn; one
    expert per task, the CPU threads split between workers; the training tensors travel through shared memory).
    Under ``torchrun`` (a ``torch.distributed`` process group of W ranks) the missing experts are spread over the
    ranks (the i-th missing expert on rank ``i mod W``), each rank writes its own experts' files into the one
    store, and every rank waits until all experts exist; an expert is seeded by its index, so the store equals a
    one-process build. A progress bar (rank 0) counts expert-epochs. Returns the cost: wall seconds, expert-epochs
    trained and disk use.

    Raises:
        DataValidationError: ``n`` or ``epochs`` below 1.
    """
    if n < 1 or epochs < 1:
        raise DataValidationError(f"expert trajectories need n >= 1 experts and epochs >= 1, got n={n}, "
                                  f"epochs={epochs}")
    rank, size = world()
    missing = [k for k in range(n) if store.epochs_of(k) < epochs]
    todo = shard_items(missing) if size > 1 else missing
    done_before = sum(min(max(store.epochs_of(k), 0), epochs) for k in range(n))
    start = time.perf_counter()
    cpu0 = time.process_time()
    if todo:
        logger.info("training %d expert(s) to %d epochs in %s (%d worker(s))", len(todo), epochs, store.root,
                    workers)
    bar = tqdm(total=n * epochs, initial=done_before, desc="experts (epochs)",
               disable=not progress or not missing or rank != 0, dynamic_ncols=True)

    def refresh() -> None:
        bar.n = sum(min(max(store.epochs_of(k), 0), epochs) for k in range(n))
        bar.refresh()

    try:
        if workers <= 1 or len(todo) <= 1:
            for k in todo:
                train_expert(store, k, epochs=epochs, data=data, modality=modality, device=device)
                refresh()
        else:
            from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

            import torch.multiprocessing as mp

            threads = max(1, torch.get_num_threads() // workers)
            data_cpu = data.to("cpu")
            tasks = [(str(store.root), k, epochs, data_cpu, type(modality).__module__, modality.name, str(device),
                      threads) for k in todo]
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
                pending = {pool.submit(_worker, t) for t in tasks}
                while pending:
                    finished, pending = wait(pending, timeout=2.0, return_when=FIRST_COMPLETED)
                    for f in finished:
                        f.result()  # re-raise a worker's error here
                    refresh()
    finally:
        bar.close()
    if size > 1:
        barrier()  # every rank's experts are on disk before any rank samples them
    trained = sum(min(max(store.epochs_of(k), 0), epochs) for k in range(n)) - done_before
    return {"experts": n, "epochs": epochs, "expert_epochs_trained": trained,
            "wall_s": round(time.perf_counter() - start, 2),
            "cpu_s_main_process": round(time.process_time() - cpu0, 2), **store.describe()}
