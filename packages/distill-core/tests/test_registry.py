"""Method and modality registries: unknown names list the choices, duplicates are refused."""

from __future__ import annotations

import pytest

from distill_core import (
    Method,
    RandomSubset,
    UnknownNameError,
    get_method,
    get_modality,
    list_methods,
    list_modalities,
    register_method,
)
from distill_core.registry import modality_for_dataset
from distill_core.testing import ToyModality


def test_builtin_and_test_methods_are_listed() -> None:
    names = list_methods()
    assert {"random", "herding", "kcenter", "test_toy_dm", "test_toy_nan"} <= set(names)
    assert names == sorted(names)
    assert get_method("random") is RandomSubset and RandomSubset.name == "random"


def test_unknown_method_lists_choices() -> None:
    with pytest.raises(UnknownNameError) as info:
        get_method("dmm")
    message = str(info.value)
    assert message.startswith("Could not resolve method 'dmm' among choices [")
    assert "'random'" in message and "'test_toy_dm'" in message
    assert isinstance(info.value, KeyError) and info.value.choices == list_methods()


def test_duplicate_registration_of_another_class_is_refused() -> None:
    class Impostor(Method):  # type: ignore[type-arg]
        """Not the random baseline."""

    with pytest.raises(ValueError, match=r"'random' is already registered by distill_core\.baselines\.RandomSubset"):
        register_method("random")(Impostor)
    assert get_method("random") is RandomSubset and Impostor.name == ""


def test_same_class_name_in_another_module_is_refused() -> None:
    # e.g. two packages that both call their class DM: the second must not silently take over "dm"
    impostor = type("RandomSubset", (Method,), {"__module__": "some_plugin.methods", "__qualname__": "RandomSubset"})
    with pytest.raises(ValueError, match="'random' is already registered"):
        register_method("random")(impostor)
    assert get_method("random") is RandomSubset


def test_registering_the_same_class_again_is_allowed() -> None:
    assert register_method("random")(RandomSubset) is RandomSubset
    assert get_method("random") is RandomSubset


def test_modalities() -> None:
    assert "toy" in list_modalities()
    toy = get_modality("toy")
    assert isinstance(toy, ToyModality) and get_modality("toy") is not toy  # a new instance each time
    with pytest.raises(UnknownNameError, match=r"modality 'sound' among choices \[.*'toy'"):
        get_modality("sound")


def test_dataset_resolution() -> None:
    found = modality_for_dataset("blobs")
    assert isinstance(found, ToyModality) and found.name == "toy"
    assert found.load_dataset("blobs").describe()["n_train"] == 120  # the modality that claims it also reads it
    with pytest.raises(UnknownNameError, match=r"dataset 'bolbs' among choices \[.*'blobs'.*npz:PATH"):
        modality_for_dataset("bolbs")


def test_toy_modality_unknown_names(blobs) -> None:  # type: ignore[no-untyped-def]
    toy = ToyModality()
    with pytest.raises(UnknownNameError, match=r"model 'resnet' among choices \['linear', 'mlp'\]"):
        toy.build_model("resnet", sample_shape=(8,), num_classes=3)
    with pytest.raises(UnknownNameError, match="dataset 'cifar10'"):
        toy.load_dataset("cifar10")
    with pytest.raises(UnknownNameError, match="augmentation 'flip'"):
        toy.augmenter("flip")
    with pytest.raises(NotImplementedError, match="no export format"):
        toy.export(None, None, None)  # type: ignore[arg-type]
