"""MLflow bookkeeping: runs and their tags (`mlflow_runs`), stores, process liveness, run names and
dataset lineage, local tracking servers."""
