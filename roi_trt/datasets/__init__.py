"""Dataset formats (torch-free, Python 3.6): read by training and by the benchmarks alike."""
