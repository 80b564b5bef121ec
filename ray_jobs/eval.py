"""Cluster entry point for GSM8K pass@1 of one model: the same arguments as ``orca-math eval``.

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python ray_jobs/eval.py \
        --model /mnt/shared/runs/m7b/models/M1 --data gsm8k-test --out /mnt/shared/runs/m7b/eval/M1 \
        --config configs/orca_math_mistral7b.yaml
"""

import sys

from orca_math.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
