"""Training on Ray Train with TRL: SFT on teacher solutions, then DPO or KTO on preferences.

``run_sft`` / ``run_preference`` (``run.py``) are the stage entry points; ``rows.py`` builds TRL
rows as pure functions; ``trainers.py`` maps our configs onto TRL; ``ray_train.py`` is the thin
``TorchTrainer`` shell.
"""

from orca_math.train.config import DPOTrainConfig, KTOTrainConfig, SFTTrainConfig, TrainScalingConfig
from orca_math.train.stage import run_preference, run_sft

__all__ = ["DPOTrainConfig", "KTOTrainConfig", "SFTTrainConfig", "TrainScalingConfig", "run_preference", "run_sft"]
