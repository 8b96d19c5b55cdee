"""What every section of the benchmark shares, imported downwards only: paths, the configuration
base, the run's context (measurement cache, the official package's runner) and the section
interface, model specs and timed calls, number formatting, chart helpers, machine information and
the training recipe that the accuracy and training sections share."""
