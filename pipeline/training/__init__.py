"""Training and evaluation internals: data, transforms, loop, checkpoints, processes."""
