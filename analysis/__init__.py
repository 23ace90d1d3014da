"""Reading, summarising, fitting, reporting and comparing commbench runs (one process, no MPI)."""
