"""Cluster entry point for DPO/KTO: the same arguments as ``orca-math train-pref``.

    ray job submit --working-dir . -- python ray_jobs/train_pref.py \
        --algo kto --model runs/x/sft --data runs/x/round1/kto --out runs/x/round1/model --config default
"""

import sys

from orca_math.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-pref", *sys.argv[1:]]))
