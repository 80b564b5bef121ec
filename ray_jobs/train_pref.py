"""Cluster entry point for DPO/KTO: the same arguments as ``orca-math train-pref``.

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python ray_jobs/train_pref.py \
        --algo kto --model /mnt/shared/runs/m7b/models/M1 --data /mnt/shared/runs/m7b/round1/prefs/kto.parquet --out /mnt/shared/runs/m7b/models/M2 \
        --config configs/orca_math_mistral7b.yaml
"""

import sys

from orca_math.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-pref", *sys.argv[1:]]))
