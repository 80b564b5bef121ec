"""AgentInstruct (Orca-Math): grow seed problems into new ones with a teacher LLM.

Layout, in data-flow order:
  prompts.py   every prompt, versioned (PROMPT_VERSION goes into each row's provenance)
  parsing.py   strict parsers for the teacher's replies
  clients.py   AutoGen's model client on the teacher client; per-flow usage metering, error triage
  flows.py     the three flows: Ask Me Anything, Suggester+Editor, Solve-and-verify
  backend.py   one seed -> kept rows + quarantine; the registry of backends by teacher kind
               (the contract they honour, flow names and reasons: orca_math/common/contract.py)
  parts.py     atomic per-batch commits, the resume state
  config.py    GenerateConfig / SolveStageConfig (the stage's settings)
  stage.py     Ray Data over seeds, final dedup/decontamination pass, manifest
  cli.py       ``orca-math generate`` and ``orca-math solve``
  scripted.py  a deterministic fake teacher for tests, benches and dry runs
"""
