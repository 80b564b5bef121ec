"""Practice: the student samples several solutions per problem (vLLM on Ray Data).

``config.py`` (``PracticeConfig``), ``core.py`` (which problems a round takes, which samples are
kept), ``stage.py`` (the round's problems streamed through the engines), ``cli.py`` (``orca-math practice``).
"""
