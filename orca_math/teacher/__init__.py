"""The teacher: one OpenAI-compatible chat endpoint behind every generate/solve/judge call."""
