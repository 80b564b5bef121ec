"""Student sampling with vLLM, fanned out over Ray Data."""
