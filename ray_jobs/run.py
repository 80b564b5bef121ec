"""Cluster entry point for the whole recipe: the same arguments as ``orca-math run``.

Rerun the same command to resume: finished stages are skipped, the first unfinished one resumes.

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python ray_jobs/run.py --config configs/orca_math_mistral7b.yaml --out /mnt/shared/runs/mistral7b
"""

import sys

from orca_math.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
