"""Pulumi programs (Python) for the clusters llm-router routes to: AWS EKS, GCP GKE, Azure AKS."""
