"""Training with the region-of-interest loss (paper §III-B)."""
