"""Crowdsourced segmentation: Label Studio masks to a versioned dataset, a model and pre-annotations."""

__version__ = "0.1.0"
