"""``orca-math plan``: what a run will take before it starts, offline.

  config.py  the ``plan:`` assumptions: GPU memory by type, instance families, throughputs, prices,
             data sizes, tokens; each documented where it is declared
  memory.py  GPU memory per training worker and per vLLM engine, term by term (pure arithmetic)
  core.py    the plan per stage (node type, workers, memory, tokens, hours, GPU-hours, dollars, teacher
             calls) and :func:`~orca_math.plan.core.infeasible`, the checks ``orca-math run`` makes first
  cli.py     registers ``orca-math plan``
"""
