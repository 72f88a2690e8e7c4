"""Parameter counts at paper size next to Table 1: ``python -m trainer.params``.

Models are built on the meta device, so nothing is allocated and no forward pass runs.
Paper size is n = m = 4 (Table 1: "all the results are obtained using models with n = 4
output layers"; m is not given, we take m = n) and width 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainer.models import ModelConfig, build_model, count_parameters
from trainer.models.registry import MODEL_NAMES
from trainer.paper import TABLE1_MILLIONS


@dataclass
class ParamRow:
    """One model's count and its difference from Table 1 (None where the paper has none)."""

    name: str
    params: int
    paper_millions: float | None
    diff_percent: float | None


def parameter_table(cfg: ModelConfig | None = None) -> list[ParamRow]:
    """Counts for every model at ``cfg`` (paper size by default), built on the meta device."""
    cfg = cfg or ModelConfig()
    rows = []
    for name in MODEL_NAMES:
        with torch.device("meta"):
            params = count_parameters(build_model(name, cfg))
        paper = TABLE1_MILLIONS.get(name)
        diff = None if paper is None else 100.0 * (params / 1e6 - paper) / paper
        rows.append(ParamRow(name, params, paper, diff))
    return rows


def format_table(rows: list[ParamRow]) -> str:
    """Plain-text table of ``rows``."""
    lines = [f"{'model':<15}{'params':>10}{'Table 1':>10}{'diff':>9}"]
    for row in rows:
        paper = "-" if row.paper_millions is None else f"{row.paper_millions:.1f}M"
        diff = "-" if row.diff_percent is None else f"{row.diff_percent:+.1f}%"
        lines.append(f"{row.name:<15}{row.params / 1e6:>9.2f}M{paper:>10}{diff:>9}")
    return "\n".join(lines)


def main() -> None:
    print(format_table(parameter_table()))


if __name__ == "__main__":
    main()
