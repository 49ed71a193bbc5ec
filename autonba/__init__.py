"""autonba: joint search of a neural network, its per-layer bitwidths and its hardware accelerator."""
__version__ = "0.1.0"
