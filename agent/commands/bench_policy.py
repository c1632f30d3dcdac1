"""`vla bench policy [--device cpu|cuda] [--preset P ...] [--policy PATH|default] [--json]`: policy speed.

For each preset (random weights, the preset's real sizes), or a trained checkpoint with `--policy`: batch-1
latency per chunk for parallel and autoregressive (KV-cache) decoding, latency per action as `select_action`
amortises it (chunk / executed actions), batch-32 throughput in actions/s, and training throughput in samples/s.
"""
from __future__ import annotations

import json
import statistics
import time

GPU_ONLY = {"b16-qwen0.5b"}  # skipped on CPU unless named with --preset
STATS = {"action": {"q01": [-0.05, -0.05, -0.05, -0.3, 0.0], "q99": [0.05, 0.05, 0.05, 0.3, 1.0]},
         "state": {"mean": [0.0] * 12, "std": [1.0] * 12},
         "waypoint": {"mean": [0.5, 0.0, 0.1, 0.0, 0.5, 0.0], "std": [0.1, 0.15, 0.05, 0.6, 0.1, 0.15]}}


def add_arguments(parser) -> None:
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--preset", action="append", help="preset(s) to measure (default: all that fit the device)")
    parser.add_argument("--policy", action="append", help="also measure this checkpoint ('default' = the shipped one)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per figure (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def _median_ms(fn, repeats: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def bench_preset(name: str, device: str, repeats: int) -> dict:
    import torch

    from vla.agent.train.loop import fill_word_rgb
    from vla.models.policy.config import load_config
    from vla.models.policy.policy import VLAPolicy

    cfg = fill_word_rgb(load_config(name))
    torch.manual_seed(0)
    policy = VLAPolicy.create(cfg, STATS, ["pick up the red block and put it in the green bowl"]).to(device)
    return bench_policy(policy, device, repeats)


def bench_policy(policy, device: str, repeats: int) -> dict:
    import torch

    net, act = policy.net.eval(), policy.cfg.model.action
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    text = "pick up the red block"

    def chunk(b: int, decoding: str):
        images = torch.randint(0, 256, (b, 128, 128, 3), dtype=torch.uint8, device=device)
        state = torch.zeros(b, 12, device=device)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)

        def call():
            with autocast:
                net.predict_chunk(images, state, [text] * b, decoding)
        return call

    par = _median_ms(chunk(1, "parallel"), repeats, sync)
    ar = _median_ms(chunk(1, "autoregressive"), max(3, repeats // 4), sync)
    b32 = _median_ms(chunk(32, act.decoding), max(3, repeats // 4), sync)
    own = par if act.decoding == "parallel" else ar
    return {"ms_per_action": own / act.execute, "ms_per_chunk": own, "b32_actions_per_s": 32 * act.horizon / (b32 / 1000),
            "device": device, "decoding": act.decoding, "horizon": act.horizon, "execute": act.execute,
            "ms_per_chunk_parallel": par, "ms_per_chunk_autoregressive": ar,
            "train_samples_per_s": _train_rate(policy, device, sync),
            "params_m": sum(p.numel() for p in net.parameters()) / 1e6}


def _train_rate(policy, device: str, sync, batch: int = 8, steps: int = 3) -> float:
    import torch

    K, D = policy.cfg.model.action.horizon, policy.cfg.model.action.dim
    data = {"observation.images.front": torch.randint(0, 256, (batch, 128, 128, 3), dtype=torch.uint8),
            "observation.state": torch.zeros(batch, 12), "action": torch.zeros(batch, K, D),
            "action_is_pad": torch.zeros(batch, K, dtype=torch.bool), "task": ["pick up the red block"] * batch,
            # oracle labels, so the auxiliary heads' cost is part of a training step as in real runs
            "oracle.waypoint": torch.full((batch, 6), 0.3), "oracle.valid": torch.ones(batch, dtype=torch.bool),
            "oracle.pixel": torch.full((batch, 2), 64.0)}
    opt = torch.optim.AdamW(policy.net.parameters(), lr=1e-5)
    policy.net.train()

    def step():
        loss, _ = policy.forward(data)
        loss.backward()
        opt.step()
        opt.zero_grad()
    ms = _median_ms(step, steps, sync)
    policy.net.eval()
    return batch / (ms / 1000)


def run(args) -> int:
    import torch

    from vla import VLAError
    from vla.models.policy.config import presets
    from vla.models.policy.policy import load_policy

    if args.device == "cuda" and not torch.cuda.is_available():
        raise VLAError("--device cuda was asked for but no CUDA device is available; use --device cpu.")
    torch.set_num_threads(max(1, args.threads))
    names = args.preset or ([] if args.policy else [p for p in presets() if args.device == "cuda" or p not in GPU_ONLY])
    results = {name: bench_preset(name, args.device, args.repeats) for name in names}
    results |= {path: bench_policy(load_policy(path, device=args.device), args.device, args.repeats)
                for path in args.policy or []}
    for name, r in results.items():
        print(f"{name:14s} {args.device}: {r['ms_per_action']:.2f} ms/action, {r['ms_per_chunk']:.1f} ms/chunk "
              f"({r['decoding']}, K={r['horizon']}), autoregressive {r['ms_per_chunk_autoregressive']:.1f} ms/chunk, "
              f"b32 {r['b32_actions_per_s']:.0f} actions/s, train {r['train_samples_per_s']:.1f} samples/s, "
              f"{r['params_m']:.1f} M params")
    if args.json:
        print(json.dumps(results))
    return 0
