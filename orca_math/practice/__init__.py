"""Practice: the student samples several solutions per problem (vLLM on Ray Data)."""
