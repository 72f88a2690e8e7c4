"""The GPU section of BENCHMARKS.md, written from ``bench.gpu``'s records, and how it is kept.

The section lies between ``SECTION_START`` and ``SECTION_END``: ``make bench-gpu`` replaces it
(or appends it), and ``make bench``, which rewrites the rest of the file, keeps it
(``section_of``).
"""

from __future__ import annotations

SECTION_START = "<!-- bench-gpu: start -->"
SECTION_END = "<!-- bench-gpu: end -->"


def section_of(text: str) -> str | None:
    """The GPU section of a BENCHMARKS.md text, markers included, or None."""
    start, end = text.find(SECTION_START), text.find(SECTION_END)
    if start < 0 or end < start:
        return None
    return text[start : end + len(SECTION_END)]


def replace_section(text: str, section: str) -> str:
    """``text`` with its GPU section replaced by ``section`` (appended when it has none)."""
    old = section_of(text)
    if old is not None:
        return text.replace(old, section.rstrip("\n"))
    return (text.rstrip("\n") + "\n\n" if text.strip() else "") + section.rstrip("\n") + "\n"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _machine(env: dict | None) -> str:
    if env is None:
        return "unknown (the env part did not run)"
    gpu = "no GPU" if not env["cuda"] else f"{env['gpu']} ({env['gpu_memory_gib']:.1f} GiB)"
    if env.get("peak_tflops"):
        gpu += f", {env['peak_tflops']:g} TFLOP/s dense bf16"
    return (
        f"{gpu}, driver {env.get('driver') or '-'}, torch {env['torch']}, "
        f"CUDA {env['cuda_version']}, "
        f"cuDNN {env['cudnn']}, "
        f"Python {env['python']}, {env['cpu_cores']} CPU cores"
    )


def _step_rows(records: list[dict]) -> list[str]:
    rows = [
        "| model | variant | micro-batch x accumulation | s per step | samples/s | peak GiB "
        "| GFLOP per sample | MFU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if r["part"] not in ("steps", "compile") or "variant" not in r:
            continue
        if r["status"] != "ok":
            rows.append(f"| {r['model']} | {r['variant']} | {r['status']} | | | | | |")
            continue
        mfu = "-" if r["mfu"] is None else f"{r['mfu']:.1%}"
        rows.append(
            f"| {r['model']} | {r['variant']} | {r['micro_batch']} x {r['grad_accum']} | "
            f"{r['step_s']:.3f} | {r['samples_per_s']:.1f} | {_num(r['peak_gib'], '.1f')} | "
            f"{r['gflop_per_sample']:.1f} | {mfu} |"
        )
    return rows


def _bf16_line(r: dict) -> str:
    rel, tol = r["relative_difference"], r["tolerance"]
    verdict = "they agree" if r["agree"] else "**they do not agree**"
    return (
        f"bf16 autocast against float32 (TF32 off), {r['model']}, batch {r['batch']}, one "
        f"forward and backward pass from the same weights and batch on {r['device']}: loss "
        f"{r['fp32']['loss']:.6f} against {r['bf16']['loss']:.6f} ({rel['loss']:.3%} apart), "
        f"gradient norm {r['fp32']['grad_norm']:.5g} against {r['bf16']['grad_norm']:.5g} "
        f"({rel['grad_norm']:.3%} apart); tolerance {tol['loss']:.0%} and "
        f"{tol['grad_norm']:.0%}: {verdict}."
        + (" (On the CPU bf16 Conv3d weight gradients are inexact, `bench/gpu.py` says why: only "
           "the loss means something here.)" if r["device"] == "cpu" else "")
    )  # fmt: skip


def _loader_line(r: dict) -> str:
    pinned = ", pinned" if r["pinned"] else ""
    return (
        f"Loader: {r['workers']} worker processes, batches of {r['batch']}{pinned}, "
        f"{r['batches_timed']} timed batches over {r['shard_samples']} demo samples in shards "
        f"of 2: {r['samples_per_s']:.1f} samples/s ({r['samples_per_cpu_s']:.1f} samples per "
        "CPU-second of the workers)."
    )


def markdown(records: list[dict], command: str, dry_run: bool, sizes_line: str) -> str:
    """The GPU section for ``records`` (``bench.gpu.run``'s), written by ``command``."""
    run = records[0]
    by_part = {r["part"]: r for r in records if r.get("status") == "ok"}
    lines = [
        SECTION_START,
        "## GPU: paper-size training steps and the loader (`make bench-gpu`)",
        "",
        f"Written by `{command}` on {run['date']} in {run['seconds']:.0f} s "
        f"(budget {run['budget_s']:.0f} s). Machine: {_machine(by_part.get('env'))}.",
        "",
    ]
    if dry_run:
        lines += ["**A dry run: tiny sizes, to show that the script runs. Its figures are not "
                  "measurements to quote.**", ""]  # fmt: skip
    lines += [sizes_line, "", *_step_rows(records), ""]
    if "bf16" in by_part:
        lines += [_bf16_line(by_part["bf16"]), ""]
    if "loader" in by_part:
        lines += [_loader_line(by_part["loader"]), ""]
    e2e = [r for r in records if r["part"] == "e2e" and r.get("status") == "ok"]
    if e2e:
        lines += [*_e2e_lines(e2e), ""]
    if "profile" in by_part:
        lines += [*_profile_lines(by_part["profile"]), ""]
    missing = [_not_measured(r) for r in records if r.get("status") not in ("ok", None)]
    if missing:
        lines += [f"Not measured: {'; '.join(missing)}.", ""]
    return "\n".join(lines + [SECTION_END]) + "\n"


def _e2e_lines(records: list[dict]) -> list[str]:
    """What each command of the ``e2e`` part did (``bench.gpu_e2e``)."""
    lines = ["The paper preset through the command lines (demo videos, paper-size shards of both "
             "kinds; `bench/gpu_e2e.py`):", ""]  # fmt: skip
    for r in records:
        what, secs = r["command"], f"{r['seconds']:.0f} s"
        if what == "make-shards":
            lines.append(f"- make-shards: {r['samples']} samples in {secs}")
        elif what in ("train", "resume"):
            peak = _num(r.get("cuda_peak_gib"), ".1f")
            lines.append(
                f"- {what} (`--config paper`, exit {r['returncode']}): steps {r['start_step']} -> "
                f"{r['steps']} in {secs}, last loss {r['final_loss']:.4f} (identity of its batch "
                f"{_num(r.get('identity'), '.4f')}; {r['loss_unit']}), pixels {r['pixel_range']}, "
                f"{_num(r.get('samples_per_s'), '.1f')} samples/s, CUDA peak {peak} GiB"
            )
        else:
            kinds = ", ".join(
                f"{k} {r['loss'][k]:.4f} (identity {r['identity_loss'][k]:.4f})" for k in r["loss"]
            )
            lines.append(f"- eval (exit {r['returncode']}, {secs}): {kinds}; {r['loss_unit']}")
    return lines


def _profile_lines(r: dict) -> list[str]:
    """The operators that took most of one profiled step (``bench.gpu.part_profile``)."""
    lines = [
        f"Profile of one {r['model']} step, channels_last_3d, batch {r['batch']} "
        f"({r['step_s']:.2f} s under the profiler; {r['self_total_ms']:.0f} ms of {r['clock']} "
        "time in all kernels), the operators and kernels of most self time (on a GPU an "
        "operator's time is that of its kernels, listed too):",
        "",
        "| operator | self ms | share | calls |",
        "|---|---|---|---|",
    ]
    for op in r["top"]:
        share = op["self_ms"] / r["self_total_ms"] if r["self_total_ms"] else 0.0
        name = op["op"].replace("|", "/")
        lines.append(f"| `{name}` | {op['self_ms']:.1f} | {share:.1%} | {op['calls']} |")
    return lines


def _not_measured(r: dict) -> str:
    what = " ".join([r["part"], *(r[k] for k in ("model", "variant", "command") if k in r)])
    why = r.get("reason") or r.get("error") or ""
    if "limit_s" in r:
        why = f"after {r['limit_s']:.0f} s"
    return f"{what}: {r['status']}" + (f" ({why})" if why else "")
