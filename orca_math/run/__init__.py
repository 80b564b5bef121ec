"""The whole recipe as one resumable run: ``recipe.py`` (the stages in order), ``config.py`` (the
``run:`` section and every stage's config), ``cli.py`` (``orca-math run``), ``results.py`` (the
results table), ``report.py`` (the demo's verdict statistics), ``console.py`` (the demo's terminal lines)."""
