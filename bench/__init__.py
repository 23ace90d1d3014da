"""commbench measurement side: runs inside every rank. Importing it loads no MPI and no torch."""
__version__ = "0.1.0"
