"""Running the paper's tables: a study's plan, its ledger and its run loop, on a checked store.

* ``stores``: ``resolve_store`` (dataset + data_root → a checked store), ``default_splits``, ``table_splits``;
* ``planning``: ``Options`` (the notebooks' parameters), ``RunSpec`` and ``plan(table, rows, options)`` — each run's
  explicit configuration (``slnl.recipes.config_for``), files and identity, made once;
* ``ledger``: ``Ledger`` (finished / equivalent to a run done already / locked) and ``ResultRecord``, the result
  file's schema;
* ``run``: ``run_table``, the loop the table notebooks call;
* ``cost``: hours to reproduce the paper's tables from a measured training rate.

``slnl.sweep`` runs the same specs as notebooks; ``slnl.report`` reads the result files. How the ``small`` recipes
were chosen is ``docs/recipes.md``.
"""
from slnl.study.ledger import Ledger, ResultRecord, check_result_store
from slnl.study.planning import Options, RunSpec, config_key, plan, result_path, run_dir, spec, store_of, trained_as
from slnl.study.run import run_one, run_table
from slnl.study.stores import default_splits, resolve_store, table_splits

__all__ = ["Ledger", "ResultRecord", "check_result_store", "Options", "RunSpec", "config_key", "plan",
           "result_path", "run_dir", "spec", "store_of", "trained_as", "run_one", "run_table", "default_splits",
           "resolve_store", "table_splits"]
