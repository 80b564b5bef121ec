"""Cluster entry point for judging practice samples: the same arguments as ``orca-math judge``.

    ray job submit --working-dir . -- python ray_jobs/judge.py \
        --samples RUN/round1/practice/samples.parquet --problems RUN/seeds/problems.parquet \
        --out RUN/round1/judge --config configs/orca_math_mistral7b.yaml
"""

import sys

from orca_math.cli import main

if __name__ == "__main__":
    sys.exit(main(["judge", *sys.argv[1:]]))
