"""Image data distillation on ConvNet and friends: DC, DSA, DM, KIP, RFAD, FRePO, DD, MTT, TESLA and DATM, with
dense or parameterized (IDC multi-formation, LinBa) summaries.

Images are ``(N, C, H, W)`` float tensors, preprocessed on the training split (channel normalisation, optionally
ZCA) with the preprocessing stored in every artifact. The methods plug into distill-core's loop, evaluation,
artifacts and CLI through :class:`VisionModality`. The Siamese augmentation itself is
:class:`distill_vision.augment.DSA` (the method of the same name is :class:`distill_vision.methods.DSA`).
"""

from .cntk import CNTK, cnngp, cntk, cntk_kernels
from .datasets import DATASETS, load, read_npz_images
from .methods import (
    DATM,
    DC,
    DD,
    DM,
    DSA,
    KIP,
    MTT,
    RFAD,
    TESLA,
    DATMConfig,
    DCConfig,
    DDConfig,
    DMConfig,
    DSAConfig,
    FRePO,
    FRePOConfig,
    KIPConfig,
    MTTConfig,
    RFADConfig,
    TESLAConfig,
    VisionMethod,
    native_protocol,
)
from .modality import VisionModality, default_strategy
from .models import ARCHITECTURE_DEFAULTS, MLP, ConvNet, LeNet, ResNet18, build_model, list_models, register_model
from .params import LinearBases, MultiFormation

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURE_DEFAULTS",
    "CNTK",
    "DATASETS",
    "DATM",
    "DATMConfig",
    "DC",
    "DCConfig",
    "DD",
    "DDConfig",
    "DM",
    "DMConfig",
    "DSA",
    "DSAConfig",
    "FRePO",
    "FRePOConfig",
    "KIP",
    "KIPConfig",
    "LeNet",
    "LinearBases",
    "MLP",
    "MTT",
    "MTTConfig",
    "MultiFormation",
    "RFAD",
    "RFADConfig",
    "ResNet18",
    "TESLA",
    "TESLAConfig",
    "ConvNet",
    "VisionMethod",
    "VisionModality",
    "__version__",
    "build_model",
    "cnngp",
    "cntk",
    "cntk_kernels",
    "default_strategy",
    "list_models",
    "load",
    "native_protocol",
    "read_npz_images",
    "register_model",
]
