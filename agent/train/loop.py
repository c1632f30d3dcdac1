"""The policy training loop: AdamW, warmup + cosine schedule, gradient accumulation, bf16 autocast on CUDA,
DDP under `torchrun`, periodic atomic checkpoints with exact resume, metrics to CSV and TensorBoard.

Every random draw in a step (batch choice, augmentation, word dropout, dropout layers) is seeded from
(seed, step), so a run killed and resumed from its last checkpoint ends with the same weights as one that never
stopped.
"""
from __future__ import annotations

import csv
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from vla import VLAError
from vla.agent.train.data import TrainingData
from vla.agent.train.progress import progress_bar
from vla.agent.train.state import latest_checkpoint, restore_optimizer, save_train_checkpoint
from vla.models.policy.config import PolicyConfig
from vla.models.policy.policy import VLAPolicy, load_policy


def lr_factor(step: int, cfg) -> float:
    """Linear warmup to 1, then cosine decay to `min_lr_ratio` at the last step."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _distributed() -> tuple[int, int, int]:
    """(rank, world, local_rank); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def _device(cfg, local_rank: int) -> torch.device:
    want = cfg.train.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda":
        if not torch.cuda.is_available():
            raise VLAError("train.device=cuda but no CUDA device is available; use train.device=cpu.")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if want != "cpu":
        raise VLAError(f"train.device must be auto, cpu or cuda (got {want!r}).")
    return torch.device("cpu")


def _optimizer(net: torch.nn.Module, cfg) -> torch.optim.Optimizer:
    params = [p for p in net.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))


class MetricLog:
    """Append-only metrics.csv plus TensorBoard scalars (rank 0 only)."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled, self.path, self.writer = enabled, run_dir / "metrics.csv", None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tb"))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["step", *metrics])
            if new:
                w.writeheader()
            w.writerow({"step": step, **{k: f"{v:.6g}" for k, v in metrics.items()}})
        for key, value in metrics.items():
            self.writer.add_scalar(f"train/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


#: model settings that change no weights (how training feeds the network, how inference reads the grounding); a
#: resumed or fine-tuning run takes them from its command
TRAINING_ONLY_MODEL_KEYS = ("word_dropout", "ground_teacher", "ground_peak")
#: architecture additions a fine-tuning run (train.init) may switch on (key -> names of the modules it adds):
#: the new modules start at zero, so the grown network computes what the checkpoint did until training moves them
GROWABLE_MODEL_KEYS = {"ground_color_maps": ("color_patch", "c1_color"), "ground_relations": ("relate",),
                       "ground_pixel_depth": ("fine.unet.",)}


def _start(cfg: PolicyConfig, data: TrainingData, run_dir: Path, resume: bool, device: torch.device):
    """(policy on device, optimizer, first step, checkpoint): fresh, or the newest checkpoint in run_dir."""
    last = latest_checkpoint(run_dir) if resume else None
    if last is None and cfg.train.init:
        return _init_from(cfg, data, device)
    if last is None:
        fill_word_rgb(cfg)
        torch.manual_seed(cfg.train.seed)
        policy = VLAPolicy.create(cfg, data.stats, data.tasks)
        if cfg.model.vision.normalize == "mean_image":
            sample = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.train.seed))[:4096]
            policy.net.vision.fit_mean_image(data.images[sample.sort().values])
        policy.to(device)
        return policy, _optimizer(policy.net, cfg.train), 0, None
    policy = load_policy(last, device=str(device))
    policy.cfg.train = cfg.train                     # the schedule/length may be extended on resume
    for key in TRAINING_ONLY_MODEL_KEYS:             # so may what only shapes training, not the architecture
        setattr(policy.cfg.model, key, getattr(cfg.model, key))
    opt = _optimizer(policy.net, cfg.train)
    from vla.models.checkpoint import read_checkpoint

    ckpt = read_checkpoint(last, ("train_state.json",))
    state = ckpt.json_files["train_state.json"]
    restore_optimizer(opt, ckpt.tensors("optimizer.safetensors"), state["optimizer"])
    return policy, opt, int(state["step"]), last


def fill_word_rgb(cfg: PolicyConfig) -> PolicyConfig:
    """With model.ground_colors, the colour words' RGB values from the task suite's vocabulary (unless given)."""
    if cfg.model.ground_colors and not cfg.model.word_rgb:
        from vla.envs.vocab import COLORS

        cfg.model.word_rgb = {name: [float(c) for c in rgba[:3]] for name, rgba in COLORS.items()}
    return cfg


def _init_from(cfg: PolicyConfig, data: TrainingData, device: torch.device):
    """Fine-tuning start: the weights, architecture, tokenizers and stats of `cfg.train.init`, step 0."""
    policy = load_policy(cfg.train.init, device="cpu")
    want = len(policy.stats["action"]["q01"])
    have = len(data.stats["action"]["q01"])
    if want != have:
        raise VLAError(f"train.init {cfg.train.init!r} acts in {want} dimensions but the dataset's actions have "
                       f"{have}; fine-tune on data from the same action space.")
    policy.cfg.train = cfg.train
    policy.cfg.data = cfg.data
    for key in TRAINING_ONLY_MODEL_KEYS:
        setattr(policy.cfg.model, key, getattr(cfg.model, key))
    policy = _grown(policy, cfg)
    policy.to(device)
    return policy, _optimizer(policy.net, cfg.train), 0, None


def _grown(policy: VLAPolicy, cfg: PolicyConfig) -> VLAPolicy:
    """The init policy with the GROWABLE_MODEL_KEYS that `cfg` switches on added (new modules at zero)."""
    grow = {k: getattr(cfg.model, k) for k in GROWABLE_MODEL_KEYS
            if getattr(cfg.model, k) and getattr(cfg.model, k) != getattr(policy.cfg.model, k)}
    if not grow:
        return policy
    if any(getattr(policy.cfg.model, k) for k in grow):
        raise VLAError(f"train.init {cfg.train.init!r} already has {', '.join(grow)} at another value; only adding "
                       "them to a checkpoint without them is supported.")
    for key, value in grow.items():
        setattr(policy.cfg.model, key, value)
    grown = VLAPolicy(policy.cfg.validate(), policy.net.tokenizer, policy.stats, load_weights=False)
    missing, unexpected = grown.net.load_state_dict(policy.net.state_dict(), strict=False)
    marks = tuple(m for k in grow for m in GROWABLE_MODEL_KEYS[k])
    if unexpected or any(not any(m in name for m in marks) for name in missing):
        raise VLAError(f"cannot add {', '.join(grow)} to train.init {cfg.train.init!r}: its tensors do not match.")
    return grown


def train_policy(cfg: PolicyConfig, data: TrainingData, run_dir: str | Path, resume: bool = True,
                 stop_at: int | None = None, progress: bool = True) -> Path:
    """Train to `cfg.train.steps` (or stop early at `stop_at`, as if killed); returns the final checkpoint."""
    tc = cfg.train
    rank, world, local_rank = _distributed()
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    device = _device(cfg, local_rank)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    policy, opt, step, resumed = _start(cfg, data, run_dir, resume, device)
    net = policy.net
    model = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and tc.bf16 else nullcontext()
    log = MetricLog(run_dir, rank == 0)
    end = tc.steps if stop_at is None else min(stop_at, tc.steps)
    t0, seen, last_ckpt = time.perf_counter(), 0, resumed
    with progress_bar(progress and rank == 0) as bar:
        job = bar.add_task("training", total=tc.steps, completed=step)
        while step < end:
            for group in opt.param_groups:
                group["lr"] = tc.lr * lr_factor(step, tc)
            metrics = _train_step(model, net, data, opt, cfg, step, rank, world, autocast, device)
            step += 1
            seen += tc.batch_size * tc.grad_accum * world
            if step % tc.log_every == 0 or step == end:
                metrics.update(lr=opt.param_groups[0]["lr"], samples_per_s=seen / (time.perf_counter() - t0))
                log.log(step, metrics)
                bar.update(job, info=f"loss {metrics['loss']:.3f} acc {metrics['token_acc']:.2f} "
                                     f"{metrics['samples_per_s']:.0f} samples/s")
            bar.update(job, completed=step)
            if rank == 0 and (step % tc.save_every == 0 or step == end):
                last_ckpt = save_train_checkpoint(run_dir, policy, opt, step, tc.keep_last,
                                                  {"samples_per_s": seen / (time.perf_counter() - t0)})
    log.close()
    if world > 1:
        torch.distributed.barrier()
    return last_ckpt


def _train_step(model, net, data: TrainingData, opt, cfg: PolicyConfig, step: int, rank: int, world: int,
                autocast, device) -> dict[str, float]:
    tc = cfg.train
    net.train()
    totals: dict[str, float] = {}
    for micro in range(tc.grad_accum):
        torch.manual_seed(tc.seed * 1_000_003 + step * 97 + micro * 7 + rank)     # dropout layers
        gen = torch.Generator().manual_seed(tc.seed * 7_919 + step * 131 + micro * 17 + rank)
        idx = data.indices(tc.seed, step, micro, tc.grad_accum, tc.batch_size, rank, world, cfg.data.reset_share)
        batch = data.batch(idx, cfg.data.shift, gen, cfg.data.color_aug)
        sync = nullcontext() if world == 1 or micro == tc.grad_accum - 1 else model.no_sync()
        with sync, autocast:
            loss, metrics = model(batch, gen)
            (loss / tc.grad_accum).backward()
        for key, value in metrics.items():
            totals[key] = totals.get(key, 0.0) + float(value) / tc.grad_accum
    if tc.grad_clip > 0:
        totals["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(net.parameters(), tc.grad_clip))
    opt.step()
    opt.zero_grad(set_to_none=True)
    return totals
