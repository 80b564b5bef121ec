"""Cluster entry point for SFT: the same arguments as ``orca-math sft``.

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python ray_jobs/sft.py \
        --model mistralai/Mistral-7B-v0.1 --data /mnt/shared/runs/m7b/seeds/problems.parquet --out /mnt/shared/runs/m7b/models/M1 \
        --config configs/orca_math_mistral7b.yaml
"""

import sys

from orca_math.cli import main

if __name__ == "__main__":
    sys.exit(main(["sft", *sys.argv[1:]]))
