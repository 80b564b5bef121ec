"""Cluster entry point for DPO pairs and KTO examples: the same arguments as ``orca-math prefs``.

    ray job submit --working-dir . -- python ray_jobs/prefs.py \
        --problems RUN/seeds/problems.parquet --samples RUN/round1/practice/samples.parquet \
        --judgments RUN/round1/judge/judgments.parquet --out RUN/round1/prefs --round 1 \
        --config configs/orca_math_mistral7b.yaml
"""

import sys

from orca_math.cli import main

if __name__ == "__main__":
    sys.exit(main(["prefs", *sys.argv[1:]]))
