"""Seeds: read math word problems from any source into the problem schema."""

from orca_math.seeds.readers import read_problems, resolve_data_spec

__all__ = ["read_problems", "resolve_data_spec"]
