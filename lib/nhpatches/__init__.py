"""nhpatches: learned patch descriptors on noisy HPatches (N-HPatches)."""

__version__ = "0.1.0"
