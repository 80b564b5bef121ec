"""The whole recipe as one resumable run: stage order, skip/resume planning, results."""
