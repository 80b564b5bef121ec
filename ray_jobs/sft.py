"""Cluster entry point for SFT: the same arguments as ``orca-math sft``.

    ray job submit --working-dir . -- python ray_jobs/sft.py \
        --model mistralai/Mistral-7B-v0.1 --data runs/x/problems --out runs/x/sft --config default
"""

import sys

from orca_math.cli import main

if __name__ == "__main__":
    sys.exit(main(["sft", *sys.argv[1:]]))
