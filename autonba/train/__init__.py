"""Retraining of derived networks."""
