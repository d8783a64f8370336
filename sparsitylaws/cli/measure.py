"""``sparsitylaws measure``: checkpoints -> activation-sparsity rows in a Parquet table.

torch and transformers are imported inside the command only, so ``sparsitylaws --help``
stays light.  See docs/measure.md.
"""

from __future__ import annotations

from pathlib import Path

import click

from sparsitylaws.cli.options import output_option
from sparsitylaws.cli.params import TOKEN_COUNT, TOKEN_COUNT_OR_ZERO


@click.command("measure")
@click.argument("checkpoints", nargs=-1, type=click.Path(path_type=str))
@click.option("--run", "run_name", required=True, help="Run name written in every row.")
@output_option((".parquet",), "Table to append to, created if absent", required=True)
@click.option("--run-dir", type=click.Path(path_type=str), default=None,
              help="Training-run folder: every checkpoint inside, ordered by tokens, with the "
                   "paper's stabilizing strategy (one CETT from the last five).")
@click.option("--text", default="pydoc", show_default=True,
              help="Evaluation text: a UTF-8 file, or 'pydoc' (Python's pydoc_data.topics).")
@click.option("--seq-len", default=512, show_default=True, type=click.IntRange(min=1),
              help="Tokens per evaluation sequence.")
@click.option("--num-seqs", default=8, show_default=True, type=click.IntRange(min=1),
              help="Number of evaluation sequences.")
@click.option("--p", "p", default=1.0, show_default=True, type=float,
              help="PPL-p%: allowed perplexity increase in percent (> 0).")
@click.option("--metric", "metrics", multiple=True,
              help="ppl-p (default), zero, topk:K, fat:EPS, cett:C; repeatable.")
@click.option("--tokens-trained", type=TOKEN_COUNT, default=None,
              help="Tokens trained (one checkpoint), e.g. 2e12 or 2T; else trainer_state.json "
                   "or the name.")
@click.option("--tokens-per-step", type=TOKEN_COUNT, default=None,
              help="Tokens per optimizer step, for checkpoint-STEP names or global_step.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--dtype", default="auto", show_default=True,
              type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
              help="Compute dtype (auto: bfloat16 on a GPU that supports it, else float32).")
@click.option("--search", default="fast", show_default=True,
              type=click.Choice(["fast", "bisect", "paper"]),
              help="fast: exact curves + certifying root finder; bisect: the paper's Algorithm 1 "
                   "on one cached dense pass; paper: Algorithm 1 as the authors' code runs it "
                   "(a dense pass and per-layer bisection at every step).")
@click.option("--xtol", default=1e-3, show_default=True, type=float, help="Tolerance on CETT.")
@click.option("--shard", default=None,
              help="i/n: measure checkpoints i, i+n, ... (0-based); 'auto': from "
                   "SLURM_ARRAY_TASK_ID/COUNT or torchrun's RANK/WORLD_SIZE.")
@click.option("--find-cett", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="--run-dir: only search the run's joint CETT and write it to this JSON file "
                   "(stage one of a cluster job).")
@click.option("--cett-from", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="--run-dir: measure at the joint CETT in this file (from --find-cett; "
                   "refused if its settings differ) instead of searching.")
@click.option("--bos/--no-bos", "bos", default=None,
              help="Start every evaluation window with the tokenizer's BOS token (default: "
                   "as the tokenizer does, e.g. yes for Gemma, no for SmolLM2).")
@click.option("--per-pass", default=1, show_default=True, type=click.IntRange(min=1),
              help="CETT values evaluated per batched forward (part of the settings hash).")
@click.option("--device-map", default=None,
              help="'auto' spreads a large model over GPUs, CPU and disk (accelerate).")
@click.option("--offload-folder", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="--device-map: folder for weights offloaded to disk (default in the cache).")
@click.option("--batch-size", default=None, type=int, help="Sequences per forward (default all).")
@click.option("--max-memory-gb", default=None, type=float,
              help="Memory for captured activations (default: 80% of the device's free "
                   "memory); above it, layer groups and full curves.")
@click.option("--warmup-checkpoints", default=0, show_default=True, type=int,
              help="--run-dir: the first N checkpoints are warm-up.")
@click.option("--warmup-tokens", default=0, show_default=True, type=TOKEN_COUNT_OR_ZERO,
              help="--run-dir: checkpoints below this many tokens are warm-up.")
@click.option("--allow-pickle", is_flag=True, help="Allow pickled .bin weights (weights_only).")
@click.option("--trust-remote-code", is_flag=True, help="Allow the checkpoint's own model code.")
@click.option("--activation-override", default=None, type=click.Choice(["relu", "silu", "gelu"]),
              help="Swap every FFN activation (e.g. a ReLU variant of a SiLU model).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def measure(checkpoints: tuple[str, ...], run_name: str, output: Path, run_dir: str | None,
            text: str, seq_len: int, num_seqs: int, p: float, metrics: tuple[str, ...],
            tokens_trained: int | None, tokens_per_step: int | None, device: str, dtype: str,
            search: str, xtol: float, shard: str | None, find_cett: Path | None,
            cett_from: Path | None, bos: bool | None, per_pass: int, device_map: str | None,
            offload_folder: Path | None, batch_size: int | None, max_memory_gb: float | None,
            warmup_checkpoints: int,
            warmup_tokens: int, allow_pickle: bool, trust_remote_code: bool,
            activation_override: str | None, quiet: bool) -> None:
    """Measure activation sparsity of CHECKPOINTS (HF folders or GGUF files)."""
    from sparsitylaws.errors import MeasureError

    if p <= 0:
        raise MeasureError(f"--p {p:g}: p must be > 0 (percent of PPL increase)")
    if run_dir and checkpoints:
        raise MeasureError("give checkpoints or --run-dir, not both")
    try:
        from sparsitylaws.measure.runner import MeasureSettings, Runner
    except ModuleNotFoundError as exc:  # the light install: no torch or transformers
        if (exc.name or "").split(".")[0] in MEASURE_EXTRA:
            raise MeasureError(
                f"measure needs the 'measure' extra ({exc.name} is not installed): "
                "pip install 'sparsitylaws[measure]' (from a clone: pip install -e '.[measure]')"
            ) from None
        raise

    settings = MeasureSettings(
        run=run_name, output=output, text=text, seq_len=seq_len, num_seqs=num_seqs, p=p,
        metrics=list(metrics) or ["ppl-p"], device=device, dtype=dtype, search=search,
        xtol=xtol, device_map=device_map, allow_pickle=allow_pickle,
        trust_remote_code=trust_remote_code, activation_override=activation_override,
        tokens_trained=tokens_trained, tokens_per_step=tokens_per_step, shard=shard,
        batch_size=batch_size, max_memory_gb=max_memory_gb, bos=bos, per_pass=per_pass,
        offload_folder=offload_folder, find_cett=find_cett, cett_from=cett_from,
        warmup_checkpoints=warmup_checkpoints, warmup_tokens=warmup_tokens, quiet=quiet)
    n = Runner(settings).run(list(checkpoints), run_dir)
    if find_cett:
        click.echo(f"joint CETT written to {find_cett}", err=True)
    else:
        click.echo(f"{n} row(s) written to {output}", err=True)


#: top-level modules of the 'measure' extra (pyproject.toml)
MEASURE_EXTRA = ("torch", "transformers", "safetensors", "accelerate", "gguf", "tqdm")
