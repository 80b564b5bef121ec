"""A procedural world of GSM8K-style problems and a symbolic teacher that runs the AgentInstruct flows on it.

Problems are small programs (``program.py``) of typed steps (``steps.py``) rendered to text
(``render.py``) with step-by-step solutions (``solve.py``); ``generate.py`` draws train and
held-out sets that cannot overlap; ``teacher.py`` runs Ask-Me-Anything, Suggester+Editor and
Solve on programs. Nothing here needs a model, a GPU or the network.
"""
