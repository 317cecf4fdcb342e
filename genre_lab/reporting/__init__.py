"""Results across runs: seed statistics and paired comparisons, plots."""
