"""``python -m bench [--out BENCHMARKS.md] [--quick]``: run every benchmark, write the report."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from bench.run import FULL, QUICK, run


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--samples", type=int, default=FULL.samples, help="per make-shards run")
    parser.add_argument("--repeats", type=int, default=FULL.repeats, help="make-shards runs")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that it runs")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if not args.quick:
        sizes = dataclasses.replace(sizes, samples=args.samples, repeats=args.repeats)
    text = run(args.out, sizes)
    print(text)
    return text


if __name__ == "__main__":
    main()
