"""Evaluation of trained runs: the paper's Tables 1-3 and Figures 5-7 and 10, and decomposition
of any video file. Evaluation sits below training: it imports nothing from ``trainer.train``.

* ``runs``: load a run (its config, its record of what it was trained on, its weights).
* ``types``: what one run's evaluation pass produces (``Example``, ``RunResult``).
* ``scoring``: the evaluation pass over the fixed validation set (``trainer.data.validation``).
* ``summary``: the per-run metrics of ``eval.json``, per blend kind and over both.
* ``audio_shift``: Figure 10, the control audio shifted in time.
* ``evaluation``: ``evaluate``, the orchestrator: report.md, eval.json, figures.
* ``tables``: the markdown tables next to the paper's numbers (``trainer.paper``).
* ``figures``: PNG image grids and example mp4s.
* ``decompose``: a trained model applied to any video file in 64-frame windows.
* ``downstream``: Table 3's scoring rules, a TorchScript classifier, a tiny one to train.
* ``baseline``: the identity baseline of any shards, with no trained run.
"""

from trainer.eval.baseline import identity_baseline
from trainer.eval.decompose import decompose
from trainer.eval.downstream import train_tiny_classifier
from trainer.eval.evaluation import evaluate
from trainer.eval.runs import load_run

__all__ = ["decompose", "evaluate", "identity_baseline", "load_run", "train_tiny_classifier"]
