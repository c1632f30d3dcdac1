"""The training loop shared by the perception tools: AdamW, warmup + cosine schedule, a step or time budget,
a rich progress bar on stderr, and a `step_fn(step) -> (loss, metrics)` supplied by each tool."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass
class LoopConfig:
    steps: int = 2000
    minutes: float = 0.0       # > 0 stops early when this wall-clock budget is spent
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 1            # torch CPU threads (1 avoids oversubscription on a shared machine)
    device: str = "cpu"         # cpu, or cuda for `vla train diffusion` (the other tools train on the CPU)
    log_every: int = 50


def run_loop(params, step_fn, cfg: LoopConfig, title: str = "training", after_step=None) -> dict:
    """Optimise `params` with `step_fn` until the step or time budget ends; returns the last averaged metrics.
    `after_step(step)` runs after each optimiser step (e.g. to update an EMA of the weights)."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    params = [p for p in params if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, sums, counts, last = time.time(), {}, {}, {}
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=Console(stderr=True)) as bar:
        task = bar.add_task(title, total=cfg.steps, info="")
        for step in range(cfg.steps):
            for group in opt.param_groups:
                group["lr"] = cfg.lr * _lr_factor(step, time.time() - start, cfg)
            loss, metrics = step_fn(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            if after_step is not None:
                after_step(step)
            for k, v in metrics.items():
                sums[k], counts[k] = sums.get(k, 0.0) + float(v), counts.get(k, 0) + 1
            if (step + 1) % cfg.log_every == 0 or step == cfg.steps - 1:
                last = {k: v / counts[k] for k, v in sums.items()}
                sums, counts = {}, {}
                info = " ".join(f"{k}={v:.3f}" for k, v in last.items())
                bar.update(task, info=info)
                if not bar.console.is_terminal:  # a log file gets a line instead of a live bar
                    bar.console.print(f"{title} step {step + 1} {time.time() - start:.0f}s {info}")
            bar.advance(task)
            if cfg.minutes > 0 and time.time() - start > cfg.minutes * 60:
                break
    last = {**last, **{k: v / counts[k] for k, v in sums.items()}}
    return {"steps": step + 1, "seconds": round(time.time() - start, 1), **last}


def _lr_factor(step: int, elapsed: float, cfg: LoopConfig) -> float:
    """Linear warmup, then cosine decay to 5 % over whichever budget (steps or minutes) runs out first."""
    progress = step / cfg.steps
    if cfg.minutes > 0:
        progress = max(progress, elapsed / (cfg.minutes * 60))
    warm = min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
    return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))
