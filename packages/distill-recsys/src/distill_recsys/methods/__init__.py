"""Recommender distillation methods and user-coreset baselines (one module per method)."""

from .baselines import HeadUsers, KCenterUsers, RandomUsers, UserCoresetConfig
from .distill_cf import DistillCF, DistillCFConfig, DistillCFSelection

__all__ = ["DistillCF", "DistillCFConfig", "DistillCFSelection", "HeadUsers", "KCenterUsers", "RandomUsers",
           "UserCoresetConfig"]
