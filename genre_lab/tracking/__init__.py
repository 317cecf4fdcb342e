"""MLflow bookkeeping: runs and their tags (`mlflow_runs`), kinds of run (`run_kinds`), the run
table with true states (`run_table`), stores, process liveness, run names and dataset lineage,
local tracking servers."""
