"""Training on Ray Train with TRL: SFT on teacher solutions, then DPO or KTO on preferences.

``config.py`` holds the trainers' configs; ``core.py`` builds TRL rows as pure functions;
``stage.py`` has the stages (``sft_stage``, ``preference_stage``) and ``run_sft`` /
``run_preference``, their entry points on their own; ``trainers.py`` maps our configs onto TRL;
``ray_train.py`` is the thin ``TorchTrainer`` shell; ``curves.py`` the loss curves and plot;
``cli.py`` registers ``orca-math sft`` and ``train-pref``.
"""

from orca_math.train.config import DPOTrainConfig, KTOTrainConfig, SFTTrainConfig, TrainScalingConfig
from orca_math.train.stage import run_preference, run_sft

__all__ = ["DPOTrainConfig", "KTOTrainConfig", "SFTTrainConfig", "TrainScalingConfig", "run_preference", "run_sft"]
