"""The paper's published numbers, in one place: Tables 1-3 of Alayrac et al.

Evaluation prints ours next to them (``trainer.eval.tables``) and ``make params`` compares model
sizes with Table 1 (``trainer.params``). Losses are the paper's l summed over the two targets
(eq. 4), accuracies in percent, sizes in millions of parameters. Rows are keyed by the model
names of ``trainer.models.registry`` (and ``identity``, ``pure``, ``blended`` for the baselines).
"""

from __future__ import annotations

# The rows' names in the paper's tables.
LABELS: dict[str, str] = {
    "identity": "Identity",
    "centrifuge": "Centrifuge [3]",
    "centrifuge_pc": "CentrifugePC [3]",
    "c2_nomask": "C2 w/o masking",
    "c2": "C2",
    "c3_det": "C3 w/ deterministic control",
    "c3_internal": "C3 w/ internal prediction",
}

# Table 1: (loss transparent, loss occlusion, size in millions of parameters); n = 4 outputs.
TABLE1: dict[str, tuple[float, float, float | None]] = {
    "identity": (0.364, 0.362, None),
    "centrifuge": (0.149, 0.253, 22.6),
    "centrifuge_pc": (0.135, 0.264, 45.4),
    "c2_nomask": (0.131, 0.200, 23.4),
    "c2": (0.120, 0.190, 27.1),
}
# Table 1's sizes alone (C3 variants are not in the table).
TABLE1_MILLIONS: dict[str, float] = {k: v[2] for k, v in TABLE1.items() if v[2] is not None}

# Table 2 (transparent blending): (loss, control accuracy in percent; C2's is chance).
TABLE2: dict[str, tuple[float, float]] = {
    "c2": (0.120, 50.0),
    "c3_det": (0.191, 79.1),
    "c3_internal": (0.119, 77.7),
}

# Table 3: action recognition accuracy (transparent, occlusion) in percent.
TABLE3: dict[str, tuple[float, float]] = {
    "pure": (59.5, 59.5),
    "blended": (22.1, 21.3),
    "centrifuge_pc": (34.4, 21.5),
    "c2": (40.1, 24.7),
}

# Figure 10 is a plot; the paper states accuracy drops by 1.4 points at the largest offsets.
