"""imagestore: a local Azure-Compute-Gallery for VM disk images."""

__version__ = "0.1.0"
