"""Reports and figures, drawn from the files the stages write (never from live objects):

- prepare.py, prepare_figures.py: the preprocessing report (report.json, report.md) and the paper's
  Figure 3 panels;
- training.py: training diagnostics (Figure 2: loss breakdown, task probabilities, gates,
  discriminator accuracy) from metrics.jsonl and train_config.json;
- experiment.py: the Table-1 report of an experiment directory (paired comparisons, figures).
"""
