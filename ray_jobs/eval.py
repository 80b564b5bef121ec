"""Entry point for `ray job submit`: evaluate a model's GSM8K pass@1 on the cluster.

    ray job submit --working-dir . -- python ray_jobs/eval.py --model PATH_OR_HF_ID --out /shared/runs/eval \
        --config configs/default.yaml
"""

import sys

from orca_math.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
