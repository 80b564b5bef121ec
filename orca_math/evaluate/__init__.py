"""Evaluation: pass@1 on GSM8K test (or any problem set) after every stage."""
