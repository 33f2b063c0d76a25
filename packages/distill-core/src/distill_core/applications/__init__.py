"""What summaries are for beyond faster training, as modality-free protocols (``distill apply ...``):
class-incremental continual learning with a replay memory (:mod:`.continual`) and an architecture-search proxy
(:mod:`.nas`)."""

from .continual import ContinualConfig, ContinualResult, average_accuracy, average_forgetting, run_continual
from .nas import NASConfig, NASResult, rank_correlation, run_nas

__all__ = ["ContinualConfig", "ContinualResult", "NASConfig", "NASResult", "average_accuracy", "average_forgetting",
           "rank_correlation", "run_continual", "run_nas"]
