"""Cluster entry point for the whole recipe: the same arguments as ``orca-math run``.

Rerun the same command to resume: finished stages are skipped, the first unfinished one resumes.
``--out`` is an absolute path on storage every node mounts (cluster.yaml's /mnt/shared), checked
before the first stage; ``orca-math plan --config C --cluster cluster.yaml`` says first
what it costs and whether every stage fits.

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir . \
        --runtime-env-json '{"env_vars": {"OPENAI_API_KEY": "..."}}' -- \
        python ray_jobs/run.py --config configs/orca_math_mistral7b.yaml --out /mnt/shared/runs/m7b
"""

import sys

from orca_math.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
