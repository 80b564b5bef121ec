"""Cluster entry point for practice sampling: the same arguments as ``orca-math practice``.

    ray job submit --working-dir . -- python ray_jobs/practice.py \
        --model RUN/models/M1 --problems RUN/seeds/problems.parquet --out RUN/round1/practice \
        --config configs/orca_math_mistral7b.yaml
"""

import sys

from orca_math.cli import main

if __name__ == "__main__":
    sys.exit(main(["practice", *sys.argv[1:]]))
