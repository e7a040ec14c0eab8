"""Core: the HPatches constants, run profiles, paths, atomic files and the quiet backend import."""
