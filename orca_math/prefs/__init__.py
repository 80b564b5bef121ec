"""Preferences: DPO pairs and KTO examples from judged practice samples."""
