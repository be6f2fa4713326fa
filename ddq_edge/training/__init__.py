"""Training: float pre-training, DDQ fine-tuning and fixed-bit baselines."""
from .loop import PhaseSettings, evaluate, fit, init_distributed_from_env
from .recipes import TrainPlan, build_for_task, ptq_minmax, train_ddq, train_float, train_lsq

__all__ = ["PhaseSettings", "TrainPlan", "build_for_task", "evaluate", "fit",
           "init_distributed_from_env", "ptq_minmax", "train_ddq", "train_float", "train_lsq"]
