"""commbench: measurement (runs inside every rank), the core both sides share (bench.core) and
the command line (bench.cli). Importing it loads no MPI and no torch."""
__version__ = "0.1.0"
