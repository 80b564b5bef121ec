"""Cluster entry point for practice sampling: the same arguments as ``orca-math practice``.

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python ray_jobs/practice.py \
        --model /mnt/shared/runs/m7b/models/M1 --problems /mnt/shared/runs/m7b/seeds/problems.parquet --out /mnt/shared/runs/m7b/round1/practice \
        --config configs/orca_math_mistral7b.yaml
"""

import sys

from orca_math.cli import main

if __name__ == "__main__":
    sys.exit(main(["practice", *sys.argv[1:]]))
