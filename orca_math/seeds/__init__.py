"""Seeds: read math word problems from any source into the problem schema.

``readers.py`` reads JSONL, Parquet, a saved HF datasets folder or ``hf:ID`` into problems (bad
rows quarantined); ``dedup.py`` drops near-duplicates and test-set look-alikes; ``config.py`` holds
``SeedsConfig`` and the dedup settings generate uses (``DedupConfig``, ``DecontamConfig``);
``config.py`` and ``stage.py`` are the recipe's seeds stage (no command of its own).
"""

from orca_math.seeds.readers import read_problems, resolve_data_spec

__all__ = ["read_problems", "resolve_data_spec"]
