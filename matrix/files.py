"""The names of the files in a sweep folder (``sweep_YYYYMMDD_HHMMSS/``), in one place.

Every module that writes or reads one of them names it through these constants, so a name is
spelled once.  A trial's folder (``config_001_.../``) holds the files under "In a trial's folder".
"""

from __future__ import annotations

#: The records, one per trial (:class:`~pytest_sweep.matrix.records.TrialRecord`).
SUMMARY_JSON = "sweep_summary.json"
#: The same records as a table.
SUMMARY_CSV = "sweep_summary.csv"
#: The analysis for people.
ANALYSIS_TXT = "sweep_analysis.txt"
#: The analysis for machines.
ANALYSIS_JSON = "sweep_analysis.json"
#: The parameters' importance.
IMPORTANCE_JSON = "sweep_importance.json"
#: The Pareto front of a multi-objective sweep.
PARETO_JSON = "sweep_pareto.json"
#: The HTML report.
REPORT_HTML = "sweep_report.html"
#: The folder of plots.
PLOTS_DIR = "plots"
#: The narrowed range config for the next sweep.
REFINE_RANGE = "refine_range"
#: The machine and packages the sweep ran on.
ENVIRONMENT_JSON = "environment.json"
#: How the environment differs from a resumed or compared sweep's.
ENVIRONMENT_DIFF = "environment.diff"
#: The scheduler's rung results (ASHA).
RUNGS_SQLITE = "rungs.sqlite"
#: A sampled sweep's study (``--sweep-search``: Optuna's journal) and the lock its writers take.
STUDY_JOURNAL = "search_study.journal"
STUDY_LOCK = "search_study.lock"

# In a trial's folder:
#: A trial's result and per-epoch metrics.
TRAINING_METRICS = "training_metrics.json"
#: A trial's log.
OUTPUT_LOG = "output.log"
#: The exact config a trial ran with.
CONFIG_TXT = "config.txt"
#: A trial's checkpoints.
CHECKPOINTS_DIR = "checkpoints"
#: The lock of a trial's stages (ASHA's promotion mode).
STAGE_LOCK = ".stage-lock"

#: The files the built-in reporters rewrite in interim summaries.  The JSON ones say which kind
#: they are in a field (the summary's records ``"interim"``, the analysis ``"running"``); the
#: text and the table are known as interim by being the very file the interim write left.
INTERIM_FILES = (SUMMARY_JSON, ANALYSIS_JSON, ANALYSIS_TXT, SUMMARY_CSV)
