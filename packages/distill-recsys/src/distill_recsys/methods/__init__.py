"""Recommender distillation methods and user-coreset baselines (one module per method)."""

from .baselines import HeadUsers, KCenterUsers, RandomUsers, UserCoresetConfig
from .distill_cf import DistillCF, DistillCFConfig

__all__ = ["DistillCF", "DistillCFConfig", "HeadUsers", "KCenterUsers", "RandomUsers", "UserCoresetConfig"]
