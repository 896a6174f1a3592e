"""The rules of reengage as plain Python: leads and when they are due, messages, feedback, statistics."""
