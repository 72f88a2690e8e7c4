"""``make device-wheels``: download the wheels a GPU host without a package registry lacks.

The GPU image (the device tool's KINDS.md, "Python packages already there") has torch 2.11 with
CUDA, numpy, scipy, scikit-image, opencv-python-headless, matplotlib, pyarrow, typer, tqdm,
fsspec, tensorboard and pyyaml, but not ``GPU_HOST_LACKS``. This downloads, for CPython 3.12 on
manylinux x86_64, those packages at the versions the project pins (pyproject.toml, read from the
installed project's metadata) and every dependency of theirs the image does not have
(``GPU_HOST_HAS``), at the version installed here, into ``.whl/`` (git-ignored; it travels
with the working tree when a device call carries it). ``make bench-gpu`` installs them there
with ``pip install --no-index --no-deps --target``.

    python -m bench.wheels [--dest .whl] [--print]
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import subprocess
import sys
from pathlib import Path

PROJECT = "blendkit"
GPU_HOST_LACKS = ("av", "webdataset", "deflate")
GPU_HOST_HAS = frozenset({"numpy", "pyyaml", "torch", "scipy", "typer", "tqdm", "fsspec"})
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
PYTHON = "3.12"


def _name(requirement: str) -> str:
    """The normalised project name of a requirement string ("PyYAML>=5" -> "pyyaml")."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _needs(package: str) -> list[str]:
    """``package``'s dependencies (no extras), by name."""
    return [_name(r) for r in metadata.requires(package) or [] if "extra ==" not in r]


def wheel_pins() -> list[str]:
    """``name==version`` of the lacking packages (the project's pins) and of their dependencies
    the GPU host lacks (the versions installed here), in a stable order."""
    pinned = {_name(r): r.split(";")[0].strip() for r in metadata.requires(PROJECT) or []}
    pins, todo, seen = [], list(GPU_HOST_LACKS), set()
    while todo:
        name = todo.pop(0)
        if name in seen or name in GPU_HOST_HAS:
            continue
        seen.add(name)
        pin = pinned.get(name, f"{name}=={metadata.version(name)}")
        if "==" not in pin:
            raise ValueError(f"{PROJECT} does not pin {name} to one version: {pin!r}")
        pins.append(pin)
        todo += _needs(name)
    return pins


def download_command(dest: Path, pins: list[str]) -> list[str]:
    """The ``pip download`` of ``pins`` as binary wheels for the GPU host into ``dest``."""
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--python-version", PYTHON, "--implementation", "cp", *platforms, "-d", str(dest), *pins,
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path(".whl"))
    parser.add_argument("--print", action="store_true", help="print the pins, download nothing")
    args = parser.parse_args(argv)
    pins = wheel_pins()
    if args.print:
        print("\n".join(pins))
        return 0
    args.dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(download_command(args.dest, pins), check=True)
    wheels = sorted(args.dest.glob("*.whl"))
    total = sum(w.stat().st_size for w in wheels) / 2**20
    print(
        f"{len(wheels)} wheels, {total:.1f} MiB in {args.dest}: "
        + ", ".join(w.name for w in wheels)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
