"""Cluster entry point for judging practice samples: the same arguments as ``orca-math judge``.

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python ray_jobs/judge.py \
        --samples /mnt/shared/runs/m7b/round1/practice/samples.parquet --problems /mnt/shared/runs/m7b/seeds/problems.parquet \
        --out /mnt/shared/runs/m7b/round1/judge --config configs/orca_math_mistral7b.yaml
"""

import sys

from orca_math.cli import main

if __name__ == "__main__":
    sys.exit(main(["judge", *sys.argv[1:]]))
