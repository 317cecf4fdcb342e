"""Results across runs: which runs a report counts and how they are grouped (`collect`), seed
statistics and paired comparisons (`comparison`), the experiment report and its files
(`experiment_report`, `readme_block`), the report of a tested split (`split_report`), plots."""
