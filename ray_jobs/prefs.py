"""Cluster entry point for DPO pairs and KTO examples: the same arguments as ``orca-math prefs``.

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python ray_jobs/prefs.py \
        --problems /mnt/shared/runs/m7b/seeds/problems.parquet --samples /mnt/shared/runs/m7b/round1/practice/samples.parquet \
        --judgments /mnt/shared/runs/m7b/round1/judge/judgments.parquet --out /mnt/shared/runs/m7b/round1/prefs --round 1 \
        --config configs/orca_math_mistral7b.yaml
"""

import sys

from orca_math.cli import main

if __name__ == "__main__":
    sys.exit(main(["prefs", *sys.argv[1:]]))
