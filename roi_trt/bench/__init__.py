"""Latency measurement (torch-free, Python 3.6): timing and the paper's pooled statistics."""
