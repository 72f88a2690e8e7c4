"""The identity baseline (Table 1's "Identity", ``trainer.eval.baseline``) of the proxy shards.

The first check of the data against the paper: the same number on Kinetics-600 is 0.364
(transparent) and 0.362 (occlusion), in the paper's unit (pixels in [-1, 1]). ``make bench``
scores the shards its make-shards runs wrote (:func:`section`); ``python -m bench.baseline``
makes proxy sources and shards of both blend kinds on its own and scores them.

    python -m bench.baseline [--samples 48 --seconds 10 --workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench import media
from blendkit.pipeline import make_shards
from blendkit.shard_config import ShardConfig
from trainer.eval.baseline import Baseline, identity_baseline, markdown


def proxy_shards(work: Path, samples: int, seconds: float, workers: int, **config) -> Path:
    """Shards of ``samples`` blends of both kinds made from the proxy sources (``bench.media``),
    with the default recipe (``config``: more ``ShardConfig`` fields)."""
    source = work / "src"
    media.write_sources(source, seconds=seconds)
    out = work / "shards"
    per_shard = max(1, samples // 4)
    cfg = ShardConfig(source=str(source), out=str(out), num_samples=samples,
                      samples_per_shard=per_shard, workers=workers, **config)  # fmt: skip
    make_shards(cfg, progress=False)
    return out


def section(work: Path, max_samples: int | None = None) -> list[str]:
    """The report's section: the identity baseline of every shard under ``work``'s folders
    (the make-shards runs' outputs)."""
    listing = work / "baseline-shards.txt"
    listing.write_text("\n".join(str(p) for p in sorted(work.glob("*/shard-*.tar"))) + "\n")
    t0 = time.perf_counter()
    result = identity_baseline(str(listing), max_samples=max_samples, progress=False)
    seconds = time.perf_counter() - t0
    return [
        "## Identity baseline of the proxy shards",
        "",
        _table(result),
        "",
        f"`trainer.eval.baseline` (`blendkit-eval baseline`) on the shards written above, "
        f"{result.samples['both']} samples in {seconds:.0f} s. The paper's 0.364 / 0.362 are "
        "for Kinetics-600; natural video of other content lands near them, not on them.",
        "",
    ]


def _table(result: Baseline) -> str:
    return "\n".join(markdown(result).splitlines()[2:])  # the table without its title line


def main(argv: list[str] | None = None) -> Baseline:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each source")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        shards = proxy_shards(Path(tmp), args.samples, args.seconds, args.workers)
        result = identity_baseline(str(shards))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
