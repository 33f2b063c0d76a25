"""The method interface: configs (unknown keys and wrong types refused), optimizer groups, summary initialisation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import pytest
import torch

from distill_core import (
    Budget,
    DataValidationError,
    Method,
    MethodConfig,
    RealData,
    Summary,
    UnknownNameError,
    get_method,
)
from distill_core.method import config_from_dict
from distill_core.testing import ToyModality


@dataclass
class _Config(MethodConfig):
    ratio: float = field(default=0.5, metadata={"help": "a float"})
    widths: tuple[int, ...] = field(default=(4, 8), metadata={"help": "a tuple"})
    cap: int | None = field(default=None, metadata={"help": "an optional int"})
    mode: Literal["a", "b"] = field(default="a", metadata={"help": "a choice"})
    name: str = field(default="x", metadata={"help": "a string"})


class TestConfigFromDict:
    def test_unknown_key_lists_the_options(self) -> None:
        with pytest.raises(UnknownNameError, match=r"_Config option 'ratoi' among choices \[.*'ratio'.*'steps'"):
            config_from_dict(_Config, {"ratoi": 1})

    def test_values_are_checked_and_widened(self) -> None:
        config = config_from_dict(_Config, {"ratio": 1, "widths": [1, 2], "cap": 3, "mode": "b", "steps": 7})
        assert config.ratio == 1.0 and isinstance(config.ratio, float)
        assert config.widths == (1, 2) and config.cap == 3 and config.mode == "b" and config.steps == 7
        assert config_from_dict(_Config, {"cap": None}).cap is None

    @pytest.mark.parametrize(("key", "value", "fragment"), [
        ("steps", "abc", "'steps' expects int, got 'abc' (str)"),
        ("steps", 2.5, "'steps' expects int, got 2.5 (float)"),
        ("steps", True, "'steps' expects int, got True (bool)"),
        ("ratio", "fast", "'ratio' expects float, got 'fast'"),
        ("learn_lr", 1, "'learn_lr' expects bool, got 1 (int)"),
        ("widths", 4, "'widths' expects"),
        ("cap", "many", "'cap' expects"),
        ("name", 3, "'name' expects str"),
    ])
    def test_wrong_types(self, key: str, value: object, fragment: str) -> None:
        with pytest.raises(DataValidationError) as info:
            config_from_dict(_Config, {key: value})
        assert fragment in str(info.value) and f"--set {key}=" in str(info.value)

    @pytest.mark.parametrize(("key", "value"), [("mode", "c"), ("init", "zeros"), ("optimizer", "rmsprop"),
                                                ("label_kind", "fuzzy")])
    def test_choice_outside_literal(self, key: str, value: str) -> None:
        with pytest.raises(UnknownNameError, match=f"option '{key}' value '{value}' among choices"):
            config_from_dict(_Config, {key: value})

    @pytest.mark.parametrize("name", ["random", "herding", "kcenter", "test_toy_dm"])
    def test_core_configs_document_their_options(self, name: str) -> None:
        cls = get_method(name)
        config = cls.config_class()
        assert config_from_dict(cls.config_class, config.to_dict()) == config
        for f in dataclasses.fields(config):
            assert f.metadata.get("help"), f"{name}: option {f.name!r} has no help text"


class TestMethodBase:
    def test_outer_loss_must_be_implemented(self) -> None:
        with pytest.raises(NotImplementedError, match="Method must implement outer_loss or run_step"):
            Method().outer_loss(None, None)  # type: ignore[arg-type]

    def test_stateless_method_refuses_foreign_state(self) -> None:
        Method().load_state_dict({})
        with pytest.raises(DataValidationError, match=r"no state to restore, got keys \['pool'\]"):
            Method().load_state_dict({"pool": []})

    def test_optimizer_groups(self) -> None:
        summary = Summary(x=torch.zeros(4, 2), labels=torch.tensor([0, 0, 1, 1]), num_classes=2, label_kind="soft",
                          learn_lr=True)
        method = Method(config=MethodConfig(lr_summary=0.3, lr_labels=0.0, lr_lr=0.01, momentum=0.7))
        opt = method.make_optimizer(summary)
        assert isinstance(opt, torch.optim.SGD)
        assert [g["lr"] for g in opt.param_groups] == [0.3, 0.3, 0.01]  # lr_labels 0 means: lr_summary
        assert opt.param_groups[1]["params"][0] is summary.label_values and opt.param_groups[0]["momentum"] == 0.7
        adam = Method(config=MethodConfig(optimizer="adam", lr_labels=0.05)).make_optimizer(summary)
        assert isinstance(adam, torch.optim.Adam) and adam.param_groups[1]["lr"] == 0.05

    @pytest.mark.parametrize("init", ["real", "noise"])
    def test_init_summary(self, blobs: RealData, init: str) -> None:
        method = Method(config=MethodConfig(init=init, label_kind="regression", learn_lr=True,  # type: ignore[arg-type]
                                            lr_init=0.2))
        summary = method.init_summary(blobs, budget=Budget(total=7), modality=ToyModality(),
                                      generator=torch.Generator().manual_seed(0))
        assert summary.budget == 7 and summary.label_kind == "regression"
        assert summary.lr is not None and summary.lr.item() == pytest.approx(0.2, rel=1e-5)
        rows = {tuple(r.tolist()) for r in blobs.x_train}
        from_real = [tuple(r.tolist()) in rows for r in summary.x]
        assert all(from_real) if init == "real" else not any(from_real)
