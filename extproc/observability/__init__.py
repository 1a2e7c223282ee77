"""Observability: actual cost and savings, the decision log, explain, tracing, and the live dashboard's stats."""
