"""Evaluation of trained runs: the paper's Tables 1-3 and Figures 5-7 and 10, and decomposition
of any video file.

* ``run``: load a run, the fixed validation pass, ``evaluate`` (report.md, eval.json, figures).
* ``tables``: the markdown tables next to the paper's numbers.
* ``figures``: PNG image grids and example mp4s.
* ``decompose``: a trained model applied to any video file in 64-frame windows.
* ``downstream``: Table 3's scoring rules, a TorchScript classifier, a tiny one to train.
"""

from trainer.eval.decompose import decompose
from trainer.eval.downstream import train_tiny_classifier
from trainer.eval.run import evaluate, load_run

__all__ = ["decompose", "evaluate", "load_run", "train_tiny_classifier"]
