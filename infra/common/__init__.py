"""Naming, tagging, kubeconfig and router-config helpers shared by the three cloud programs."""
