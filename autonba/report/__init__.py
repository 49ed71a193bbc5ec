"""Plots and summaries of runs."""
