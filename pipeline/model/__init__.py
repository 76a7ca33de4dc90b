"""The segmentation model: architectures, weights, data, transforms, the training loop, prediction."""
