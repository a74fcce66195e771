"""Webhooks from outside systems (Jenkins, GitHub): verify, record once, answer fast."""
