"""From annotators' masks to a dataset: mask kernels, co-occurrence, consensus, splitting, metrics."""
