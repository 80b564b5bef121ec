"""A procedural world of GSM8K-style problems and a symbolic teacher that runs the AgentInstruct flows on it.

Problems are small programs (``program.py``) of typed steps (``steps.py``) rendered to text
(``render.py``) with step-by-step solutions (``solve.py``); ``core.py`` draws train and
held-out sets that cannot overlap, as ``config.py`` (``WorldConfig``) says; ``teacher.py`` runs
Ask-Me-Anything, Suggester+Editor and Solve on programs; ``stage.py`` writes the recipe's world
stage and ``cli.py`` registers ``orca-math world`` (the teacher runs in ``orca-math generate --config
demo``). Nothing here needs a model, a GPU or the network.
"""
