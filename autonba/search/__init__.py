"""The joint search of network, bitwidths and accelerator."""
