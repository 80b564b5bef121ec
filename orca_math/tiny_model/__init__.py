"""The tiny Llama student for CPU machines and tests: ``config.py`` (``TinyModelConfig``, its shape),
``core.py`` (tokenizer and random weights into an HF folder), ``stage.py`` (the recipe's student
stage), ``cli.py`` (``orca-math tiny-model``)."""
