"""What summaries are for beyond faster training, as modality-free protocols (``distill apply ...``):
class-incremental continual learning with a replay memory (:mod:`.continual`), an architecture-search proxy
(:mod:`.nas`), differentially private distillation audited by membership inference (:mod:`.privacy`; opacus, the
``privacy`` extra) and one-shot federated learning against FedAvg (:mod:`.federated`)."""

from .continual import ContinualConfig, ContinualResult, average_accuracy, average_forgetting, run_continual
from .federated import FederatedConfig, FederatedResult, dirichlet_split, run_federated
from .nas import NASConfig, NASResult, rank_correlation, run_nas
from .privacy import PrivacyConfig, PrivacyResult, membership_auc, noise_multiplier, run_privacy, spent_epsilon

__all__ = ["ContinualConfig", "ContinualResult", "FederatedConfig", "FederatedResult", "NASConfig", "NASResult",
           "PrivacyConfig", "PrivacyResult", "average_accuracy", "average_forgetting", "dirichlet_split",
           "membership_auc", "noise_multiplier", "rank_correlation", "run_continual", "run_federated", "run_nas",
           "run_privacy", "spent_epsilon"]
