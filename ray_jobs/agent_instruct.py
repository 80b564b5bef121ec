"""Cluster entry point for AgentInstruct: the same arguments as ``orca-math generate`` (or, with
``solve`` first, ``orca-math solve``).

    RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir . \
        --runtime-env-json '{"env_vars": {"OPENAI_API_KEY": "..."}}' -- \
        python ray_jobs/agent_instruct.py --seeds gsm8k-train --out /mnt/shared/runs/m7b/generate \
        --config configs/orca_math_mistral7b.yaml

Ray Data workers write their committed parts straight into ``--out``: an absolute path on storage
every node mounts (cluster.yaml's /mnt/shared; a relative one is refused under ``ray job submit``).
Resubmitting the same command after a failure resumes from the committed parts. The API key goes in
the job's env (named by ``teacher.api_key_env``), never on the command line or in the config.
"""

import sys

from orca_math.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    command = args.pop(0) if args and args[0] in ("generate", "solve") else "generate"
    sys.exit(main([command, *args]))
