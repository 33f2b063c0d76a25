"""One-shot federated learning with distilled summaries, against FedAvg and random subsets.

The setting of FedD3 (Song et al., "Federated learning via decentralized dataset distillation in resource-
constrained edge environments", IJCNN 2023, https://arxiv.org/abs/2208.11311) and DOSFL (Zhou et al., "Distilled
one-shot federated learning", 2020, https://arxiv.org/abs/2009.07999): the training set is split over ``clients``
clients non-IID by a Dirichlet draw over each class (Hsu, Qi & Brown 2019, https://arxiv.org/abs/1909.06335:
class ``c``'s samples are shared out in proportions ``p_c ~ Dir(alpha 1)``; small ``alpha``, few classes per
client); every client distills its own data once (any registered method, ``ipc`` samples per class it holds, at most
as many as it holds) and uploads the summary; the server trains one model on the union of the summaries (one round,
one upload per client). With ``train_per_class`` the split is of a seeded balanced subset of the training set
(a stated CPU stand-in for a large dataset; the test set stays whole). Compared, with the same server training:

- **random**: every client uploads a random subset of its data of the same sizes (the same bytes);
- **FedAvg** (McMahan et al., AISTATS 2017, https://arxiv.org/abs/1602.05629): ``rounds`` rounds, every client in
  every round, ``local_epochs`` epochs of local SGD in minibatches of ``local_batch`` from the global model (the
  evaluation protocol's optimiser, constant learning rate), the server averaging the clients' parameters weighted
  by their sample counts; the test accuracy after every round is recorded beside the bytes communicated so far.

Bytes are counted as float32 numbers: a summary sample is its values plus one label (a class index, or a row of
``num_classes`` targets for soft labels); a FedAvg round moves the model's parameters down to and back up from every
client (``2 * clients * parameters * 4`` bytes). Reported: the test accuracy of each, the bytes uploaded and in
total, the first FedAvg round that reaches the one-shot summary's accuracy and its bytes.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import Budget, ClassIndex, RealData, subsample_test
from ..errors import DataValidationError, UnknownNameError
from ..modality import Modality
from ..protocol import EvalProtocol
from .continual import _class_subset, base_protocol, distill_in_process

if TYPE_CHECKING:
    from ..method import Method
    from ..synset import Summary

__all__ = ["FederatedConfig", "FederatedResult", "dirichlet_split", "distill_client", "fedavg", "run_federated",
           "training_subset"]

logger = logging.getLogger(__name__)

BYTES_PER_FLOAT = 4


def dirichlet_split(labels: Tensor, *, clients: int, alpha: float, seed: int, min_size: int = 1,
                    max_tries: int = 100) -> list[Tensor]:
    """Split sample indices over ``clients`` clients, each class by proportions drawn from ``Dir(alpha 1)``.

    Every index lands in exactly one client. Draws are repeated (seeded, up to ``max_tries``) until every client
    holds at least ``min_size`` samples, as in Hsu et al.'s and NIID-Bench's splits; a split that cannot give every
    client data (more clients than samples, or no draw succeeds) is refused.

    Args:
        labels: class of every training sample ``(N,)``.
        clients: number of clients (>= 2).
        alpha: Dirichlet concentration (> 0): small is non-IID, large approaches an even split.
        seed: seeds the class shuffles and the proportions.

    Returns:
        One sorted index tensor per client.
    """
    if not isinstance(clients, int) or clients < 2:
        raise DataValidationError(f"federated learning needs at least 2 clients, got {clients!r}")
    if not (isinstance(alpha, (int, float)) and alpha > 0 and math.isfinite(alpha)):
        raise DataValidationError(f"alpha must be a finite number > 0, got {alpha!r}")
    labels = labels.cpu()
    if len(labels) < clients * min_size:
        raise DataValidationError(f"{len(labels)} samples cannot give {clients} clients {min_size} sample(s) each; "
                                  "use fewer clients")
    rng = np.random.default_rng(seed)
    classes = sorted(set(labels.tolist()))
    for _ in range(max_tries):
        parts: list[list[int]] = [[] for _ in range(clients)]
        for c in classes:
            idx = np.flatnonzero(labels.numpy() == c)
            rng.shuffle(idx)
            cuts = (np.cumsum(rng.dirichlet(np.full(clients, float(alpha)))) * len(idx)).astype(int)[:-1]
            for k, piece in enumerate(np.split(idx, cuts)):
                parts[k].extend(piece.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [torch.tensor(sorted(p), dtype=torch.long) for p in parts]
    raise DataValidationError(f"no Dirichlet split with alpha={alpha} in {max_tries} draws gave every one of the "
                              f"{clients} clients {min_size} sample(s) (a client with no data); raise alpha or use "
                              "fewer clients")


@dataclass(kw_only=True)
class FederatedConfig:
    """Settings of one federated comparison (the CLI's ``distill apply federated``)."""

    method: str = field(default="dm", metadata={"help": "the method each client distills its data with"})
    clients: int = field(default=10, metadata={"help": "number of clients"})
    alpha: float = field(default=0.5, metadata={"help": "Dirichlet concentration of the non-IID split"})
    ipc: int = field(default=10, metadata={
        "help": "summary samples per class a client holds (at most the samples it holds of that class)"})
    steps: int | None = field(default=None, metadata={"help": "outer steps of each client's method (None: its own)"})
    method_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "the method's options"})
    rounds: int = field(default=20, metadata={"help": "FedAvg communication rounds"})
    local_epochs: int = field(default=1, metadata={"help": "FedAvg local epochs per round"})
    local_batch: int = field(default=32, metadata={
        "help": "FedAvg local minibatch size (McMahan et al. use 10 or 50; a client holds about N / clients samples)"})
    epochs: int | None = field(default=None, metadata={
        "help": "server training epochs on the union of summaries (None: the modality's protocol)"})
    seeds: list[int] = field(default_factory=lambda: [0], metadata={
        "help": "one split, one set of client summaries and one model per comparison for each seed"})
    train_per_class: int | None = field(default=None, metadata={
        "help": "split a seeded random subset of this many training samples per class instead of the whole training "
                "set (a CPU stand-in for large datasets; None: all)"})
    test_per_class: int | None = field(default=None, metadata={
        "help": "test on this many seeded test samples per class (FedAvg tests after every round; a CPU stand-in); "
                "None: all"})
    model: str | None = field(default=None, metadata={
        "help": "the server's and FedAvg's architecture (None: the modality's evaluation model)"})
    model_kwargs: dict[str, Any] | None = field(default=None, metadata={
        "help": "its constructor options, e.g. {'width': 32} (None: the protocol's)"})
    compare_fedavg: bool = field(default=True, metadata={"help": "also run FedAvg"})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FederatedResult:
    """Per seed: the split's client sizes, the accuracies (%) and bytes of the one-shot summary union, the random
    subsets' union and FedAvg (accuracy after each round)."""

    config: FederatedConfig
    protocol: EvalProtocol
    per_seed: list[dict[str, Any]]
    wall_s: float

    def summary(self) -> dict[str, Any]:
        def stat(key: str) -> dict[str, float]:
            values = [float(r[key]) for r in self.per_seed if r.get(key) is not None]
            return {"mean": round(statistics.fmean(values), 3), "std": round(_std(values), 3)} if values else {}

        out: dict[str, Any] = {
            "application": "federated", "method": self.config.method, "clients": self.config.clients,
            "alpha": self.config.alpha, "ipc": self.config.ipc, "seeds": self.config.seeds,
            "train_per_class": self.config.train_per_class,
            "summary_accuracy": stat("summary_accuracy"), "random_accuracy": stat("random_accuracy"),
            "summary_size": stat("summary_size"), "summary_upload_bytes": stat("summary_upload_bytes"),
            "client_distill_s": stat("client_distill_s"),
        }
        if self.config.compare_fedavg:
            curves = [r["fedavg_accuracy"] for r in self.per_seed]
            out.update(
                fedavg_rounds=self.config.rounds, fedavg_local_epochs=self.config.local_epochs,
                fedavg_local_batch=self.config.local_batch,
                fedavg_final_accuracy=stat("fedavg_final_accuracy"),
                fedavg_accuracy_mean=[round(statistics.fmean(a), 3) for a in zip(*curves)],
                fedavg_accuracy_std=[round(_std(a), 3) for a in zip(*curves)],
                fedavg_bytes_per_round=self.per_seed[0]["fedavg_bytes_per_round"],
                fedavg_parameters=self.per_seed[0]["fedavg_parameters"],
                fedavg_rounds_to_summary_accuracy=[r["fedavg_rounds_to_summary_accuracy"] for r in self.per_seed])
        out.update(per_seed=self.per_seed, protocol=self.protocol.to_dict(), config=self.config.to_dict(),
                   wall_s=round(self.wall_s, 2))
        return out


def _std(values: Sequence[float]) -> float:
    return statistics.pstdev(values) if len(values) > 1 else 0.0


def check_config(config: FederatedConfig) -> None:
    """Refuse bad settings before any data is loaded."""
    from ..registry import list_methods

    if config.method not in list_methods():
        raise UnknownNameError("client method", config.method, list_methods())
    for name in ("clients", "ipc", "rounds", "local_epochs", "local_batch"):
        value = getattr(config, name)
        low = 2 if name == "clients" else 1
        if not isinstance(value, int) or value < low:
            raise DataValidationError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (isinstance(config.alpha, (int, float)) and config.alpha > 0 and math.isfinite(config.alpha)):
        raise DataValidationError(f"alpha must be a finite number > 0, got {config.alpha!r}")
    for name in ("epochs", "steps", "train_per_class", "test_per_class"):
        value = getattr(config, name)
        low = 0 if name == "steps" else 1
        if value is not None and (not isinstance(value, int) or value < low):
            raise DataValidationError(f"{name} must be an integer >= {low}, got {value!r}")
    if not config.seeds or any(not isinstance(s, int) or s < 0 for s in config.seeds):
        raise DataValidationError(f"seeds must be integers >= 0 (at least one), got {config.seeds!r}")
    if config.model_kwargs is not None and not isinstance(config.model_kwargs, dict):
        raise DataValidationError(f"model_kwargs must be a dict of constructor options, got {config.model_kwargs!r}")


def training_subset(data: RealData, per_class: int | None, *, seed: int) -> RealData:
    """``data`` with ``per_class`` seeded random training samples of every class (all when ``None``); the test
    split is kept whole. A class with fewer samples is refused."""
    if per_class is None:
        return data
    counts = data.class_counts()
    short = [data.class_names[c] for c, n in enumerate(counts) if n < per_class]
    if short:
        raise DataValidationError(f"train_per_class={per_class} is more than class(es) {short} hold "
                                  f"(smallest: {min(counts)}); lower --train-per-class")
    idx = ClassIndex(data.y_train, data.num_classes).sample_balanced(
        per_class, generator=torch.Generator().manual_seed(seed)).sort().values
    return dataclasses.replace(data, x_train=data.x_train[idx], y_train=data.y_train[idx], extra=dict(data.extra))


def _client_data(data: RealData, indices: Tensor) -> tuple[RealData, list[int]]:
    """The client's samples as data over the classes it holds (relabelled in class order), and those classes."""
    held = sorted(set(data.y_train[indices].cpu().tolist()))
    local = RealData(data.name, data.x_train[indices], data.y_train[indices], data.x_test, data.y_test,
                     data.num_classes, data.class_names, data.preprocessing, dict(data.extra))
    return _class_subset(local, held), held


def distill_client(config: FederatedConfig, data: RealData, indices: Tensor, *, modality: Modality, seed: int,
                   device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor, str]:
    """Distill one client's samples ``indices`` with ``config.method``: ``min(ipc, held)`` samples of every class
    the client holds; also the random real subset of the same sizes.

    Returns:
        ``(x_summary, targets_summary, x_random, targets_random, label_kind)``; targets ``(n, num_classes)``.
    """
    local, held = _client_data(data, indices)
    counts = local.class_counts()
    sizes = [min(config.ipc, n) for n in counts]

    def init(method: Method[Any], generator: torch.Generator) -> Summary:
        if all(s == config.ipc for s in sizes):
            return method.init_summary(local, budget=Budget(ipc=config.ipc), modality=modality, generator=generator)
        # a class held with fewer than ipc samples: all of them
        chosen = ClassIndex(local.y_train, local.num_classes).sample_sizes(sizes, generator=generator)
        return method.make_summary(local, chosen, sizes=sizes, modality=modality, generator=generator)

    summary = distill_in_process(config.method, config.method_options, config.steps, local, modality=modality,
                                 seed=seed, device=device, init=init)
    x, targets = (t.detach().cpu() for t in summary.materialize())
    random_idx = ClassIndex(local.y_train, local.num_classes).sample_sizes(
        sizes, generator=torch.Generator().manual_seed(seed + 1))
    x_rand, y_rand = local.x_train[random_idx].cpu(), local.y_train[random_idx].cpu()
    held_t = torch.as_tensor(held)

    def widen(t: Tensor) -> Tensor:  # targets over the client's classes -> over all classes
        full = torch.zeros(len(t), data.num_classes, dtype=torch.float32)
        full[:, held_t] = t.float()
        return full

    return x, widen(targets), x_rand, widen(F.one_hot(y_rand, len(held))), summary.label_kind


def _upload_bytes(x: Tensor, label_kind: str, num_classes: int) -> int:
    per_label = 1 if label_kind == "hard" else num_classes
    return int(x.numel() + len(x) * per_label) * BYTES_PER_FLOAT


def _new_model(modality: Modality, data: RealData, protocol: EvalProtocol, seed: int,
               device: torch.device) -> nn.Module:
    from ..training import init_model_

    torch.manual_seed(seed)
    model = modality.build_model(protocol.model, sample_shape=data.sample_shape, num_classes=data.num_classes,
                                 **protocol.model_kwargs).to(device)
    return init_model_(model, protocol.init)


def _train_and_test(modality: Modality, data: RealData, x: Tensor, targets: Tensor, label_kind: str, *,
                    protocol: EvalProtocol, seed: int, device: torch.device) -> float:
    from ..training import accuracy, train_classifier

    model = _new_model(modality, data, protocol, seed, device)
    train_classifier(model, x.to(device), targets.to(device), label_kind=label_kind, protocol=protocol,
                     augment=modality.augmenter(protocol.augment), generator=torch.Generator().manual_seed(seed))
    return accuracy(model, data.x_test.to(device), data.y_test.to(device))


def fedavg(data: RealData, parts: Sequence[Tensor], *, modality: Modality, protocol: EvalProtocol, rounds: int,
           local_epochs: int, local_batch: int, seed: int, device: torch.device) -> tuple[list[float], int]:
    """FedAvg with full participation: per round every client trains a copy of the global model for
    ``local_epochs`` epochs in minibatches of ``local_batch`` (the protocol's SGD, constant learning rate) and the
    server takes the sample-weighted average of the clients' floating-point state.

    Returns:
        ``(test accuracy (%) after each round, number of parameters)``.
    """
    from ..training import accuracy, train_classifier

    local_protocol = protocol.with_(epochs=local_epochs, schedule="constant", batch_size=local_batch)
    augment = modality.augmenter(protocol.augment)
    global_model = _new_model(modality, data, protocol, seed, device)
    weights = torch.tensor([len(p) for p in parts], dtype=torch.float64)
    weights = weights / weights.sum()
    generator = torch.Generator().manual_seed(seed)
    curve = []
    for r in range(rounds):
        states = []
        for part in parts:
            model = copy.deepcopy(global_model)
            x, y = data.x_train[part].to(device), data.y_train[part].to(device)
            train_classifier(model, x, F.one_hot(y, data.num_classes).float(), label_kind="hard",
                             protocol=local_protocol, augment=augment, generator=generator)
            states.append(model.state_dict())
        averaged = {}
        for key, value in global_model.state_dict().items():
            if value.is_floating_point():
                averaged[key] = sum(float(w) * s[key] for w, s in zip(weights, states)).to(value.dtype)
            else:  # counters (e.g. BatchNorm's batches seen): the first client's
                averaged[key] = states[0][key]
        global_model.load_state_dict(averaged)
        curve.append(accuracy(global_model, data.x_test.to(device), data.y_test.to(device)))
        logger.debug("FedAvg round %d: %.2f%%", r + 1, curve[-1])
    return curve, sum(p.numel() for p in global_model.parameters())


def run_federated(config: FederatedConfig, data: RealData, *, modality: Modality,
                  device: torch.device | str = "cpu") -> FederatedResult:
    """Run the comparison of the module docstring once per seed in ``config.seeds``."""
    check_config(config)
    data = modality.validate_data(data)
    device = torch.device(device)
    protocol = base_protocol(data, modality).with_(n_models=1)
    if config.epochs is not None:
        protocol = protocol.with_(epochs=config.epochs)
    if config.model is not None:
        protocol = protocol.with_(model=config.model, model_kwargs={})
    if config.model_kwargs is not None:
        protocol = protocol.with_(model_kwargs=dict(config.model_kwargs))
    try:  # the server's architecture, built once before any client distills (an unknown name or option fails here;
        # built unseeded, so the global generator is left as the caller set it)
        modality.build_model(protocol.model, sample_shape=data.sample_shape, num_classes=data.num_classes,
                             **protocol.model_kwargs)
    except TypeError as exc:
        raise DataValidationError(f"model_kwargs {protocol.model_kwargs} do not fit the model {protocol.model!r}: "
                                  f"{exc}") from exc
    start = time.perf_counter()
    per_seed = []
    full_data = data
    for seed in config.seeds:
        data = subsample_test(training_subset(full_data, config.train_per_class, seed=seed), config.test_per_class,
                              seed=seed)
        parts = dirichlet_split(data.y_train, clients=config.clients, alpha=config.alpha, seed=seed)
        xs, ts, xr, tr, kinds, upload = [], [], [], [], set(), 0
        t0 = time.perf_counter()
        for k, part in enumerate(parts):
            x, t, x_rand, t_rand, kind = distill_client(config, data, part, modality=modality,
                                                         seed=seed * config.clients + k, device=device)
            xs.append(x)
            ts.append(t)
            xr.append(x_rand)
            tr.append(t_rand)
            kinds.add(kind)
            upload += _upload_bytes(x, kind, data.num_classes)
        distill_s = time.perf_counter() - t0
        label_kind = "regression" if "regression" in kinds else "soft"  # soft CE = CE on one-hot targets
        x_union, t_union = torch.cat(xs), torch.cat(ts)
        summary_acc = _train_and_test(modality, data, x_union, t_union, label_kind, protocol=protocol, seed=seed,
                                      device=device)
        random_acc = _train_and_test(modality, data, torch.cat(xr), torch.cat(tr), "hard", protocol=protocol,
                                     seed=seed, device=device)
        row: dict[str, Any] = {
            "seed": seed, "train_size": len(data.y_train), "client_sizes": [len(p) for p in parts],
            "client_classes": [len(set(data.y_train[p].tolist())) for p in parts],
            "summary_size": len(x_union), "summary_accuracy": round(summary_acc, 3),
            "random_accuracy": round(random_acc, 3), "summary_upload_bytes": upload,
            "random_upload_bytes": sum(_upload_bytes(x, "hard", data.num_classes) for x in xr),
            "client_distill_s": round(distill_s, 2)}
        if config.compare_fedavg:
            curve, n_params = fedavg(data, parts, modality=modality, protocol=protocol, rounds=config.rounds,
                                     local_epochs=config.local_epochs, local_batch=config.local_batch, seed=seed,
                                     device=device)
            per_round = 2 * config.clients * n_params * BYTES_PER_FLOAT
            reached = next((r + 1 for r, acc in enumerate(curve) if acc >= summary_acc), None)
            row.update(fedavg_accuracy=[round(a, 3) for a in curve], fedavg_final_accuracy=round(curve[-1], 3),
                       fedavg_parameters=n_params, fedavg_bytes_per_round=per_round,
                       fedavg_rounds_to_summary_accuracy=reached,
                       fedavg_bytes_to_summary_accuracy=None if reached is None else reached * per_round)
        logger.info("seed %d: one-shot %s union (%d samples) %.2f%%, random %.2f%%%s", seed, config.method,
                    len(x_union), summary_acc, random_acc,
                    f", FedAvg after {config.rounds} rounds {row['fedavg_final_accuracy']:.2f}%"
                    if config.compare_fedavg else "")
        per_seed.append(row)
    return FederatedResult(config, protocol, per_seed, time.perf_counter() - start)
