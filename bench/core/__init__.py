"""The core both sides share, importing neither: the run-directory format (bench.core.rundir;
raw samples in blocks, bench.core.samples), its writes (bench.core.atomic_write: whole files;
bench.core.run_lock: a directory belongs to one run; bench.core.run_writer: the writers), raw
samples read and summarized without pandas (bench.core.raw_samples, bench.core.summarize), the
words about what meta.json records of the machine and the job (bench.core.runmeta), sizes and
units (bench.core.units), errors (bench.core.errors), the order statistics of the stop rule and
the summary (bench.core.stats) and the plain-text summary tables (bench.core.tables). Standard
library and numpy only, so a rank can load it."""
