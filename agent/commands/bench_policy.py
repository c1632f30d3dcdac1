"""`vla bench policy [--device cpu|cuda] [--preset P ...] [--policy PATH|default] [--json]`: policy speed.

For each preset (random weights, the preset's real sizes), or a trained checkpoint with `--policy`: batch-1
latency per chunk for parallel and autoregressive (KV-cache) decoding, latency per action as `select_action`
amortises it (chunk / executed actions; with `replan: adaptive` one chunk per action, the bound: `vla eval`
reports the actions per predicted chunk it measured), batch-32 throughput in actions/s, and training throughput
in samples/s.
On CUDA parallel decoding is also replayed from CUDA graphs (models/policy/graphed.py); the headline figures are
the faster method's (`method`), and both are in the JSON.
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
    parser.add_argument("--compile", action="store_true",
                        help="on CUDA, also measure torch.compile'd parallel decoding replayed from CUDA graphs")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def _autocast(device: str):
    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)


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


def bench_preset(name: str, device: str, repeats: int, compile: bool = False) -> dict:
    import torch

    from vla.agent.train.loop import fill_word_rgb
    from vla.models.policy.config import load_config
    from vla.models.policy.policy import VLAPolicy

    cfg = fill_word_rgb(load_config(name))
    torch.manual_seed(0)
    policy = VLAPolicy.create(cfg, STATS, ["pick up the red block and put it in the green bowl"]).to(device)
    return bench_policy(policy, device, repeats, compile)


def bench_policy(policy, device: str, repeats: int, compile: bool = False) -> dict:
    import torch

    net, act = policy.net.eval(), policy.cfg.model.action
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    text = "pick up the red block"

    def chunk(b: int, decoding: str):
        images = torch.randint(0, 256, (b, 128, 128, 3), dtype=torch.uint8, device=device)
        state = torch.zeros(b, 12, device=device)
        autocast = _autocast(device)

        def call():
            with autocast:
                net.predict_chunk(images, state, [text] * b, decoding)
        return call

    par = _median_ms(chunk(1, "parallel"), repeats, sync)
    ar = _median_ms(chunk(1, "autoregressive"), max(3, repeats // 4), sync)
    b32 = _median_ms(chunk(32, act.decoding), max(3, repeats // 4), sync)
    own = par if act.decoding == "parallel" else ar
    out = {"device": device, "decoding": act.decoding, "horizon": act.horizon, "execute": act.execute,
           "replan": act.replan,
           "method": "eager", "ms_per_chunk_parallel": par, "ms_per_chunk_autoregressive": ar,
           "b32_actions_per_s_eager": 32 * act.horizon / (b32 / 1000)}
    if device == "cuda" and act.decoding == "parallel":
        out |= _graphed(net, repeats, sync)
        if compile:
            out |= _graphed(net, repeats, sync, compile=True)
    for tag in ("cuda_graph", "compiled_graph"):
        graph = out.get(f"ms_per_chunk_{tag}")
        if graph is not None and graph < own and f"b32_ms_{tag}" in out:
            own, b32, out["method"] = graph, out[f"b32_ms_{tag}"], tag
    taken = act.execute if act.replan == "chunk" else 1       # actions per chunk (adaptive: the bound)
    out |= {"ms_per_action": own / taken, "ms_per_chunk": own,
            "b32_actions_per_s": 32 * act.horizon / (b32 / 1000)}
    out["train_samples_per_s"], out["train_batch"] = _train_rate(policy, device, sync)
    out["params_m"] = sum(p.numel() for p in net.parameters()) / 1e6
    return out


def _graphed(net, repeats: int, sync, compile: bool = False) -> dict:
    """Batch-1 and batch-32 parallel decoding replayed from CUDA graphs (instructions padded to the model's
    max_text_tokens), optionally torch.compile'd first; a capture that fails is reported, not raised, so the
    eager figures still print."""
    import torch

    from vla.models.policy.graphed import GraphedChunk

    out, tag = {}, "compiled_graph" if compile else "cuda_graph"
    try:
        for b in (1, 32):
            start = time.perf_counter()
            runner = GraphedChunk(net, batch=b, compile=compile)
            out[f"setup_s_{tag}_b{b}"] = time.perf_counter() - start
            images = torch.randint(0, 256, (b, 128, 128, 3), dtype=torch.uint8, device="cuda")
            state = torch.zeros(b, 12, device="cuda")
            ms = _median_ms(lambda: runner(images, state, ["pick up the red block"] * b), repeats, sync)
            out[f"ms_per_chunk_{tag}" if b == 1 else f"b32_ms_{tag}"] = ms
            del runner
    except Exception as exc:                      # noqa: BLE001 - any capture failure is a figure to report
        out[f"{tag}_error"] = f"{type(exc).__name__}: {exc}"[:400]
    return out


def _train_rate(policy, device: str, sync, steps: int = 3) -> tuple[float, int]:
    """Training samples/s: a batch of 8 on a CPU, the preset's own batch (bf16 autocast) on CUDA."""
    import torch

    batch = policy.cfg.train.batch_size if device == "cuda" else 8
    K, D = policy.cfg.model.action.horizon, policy.cfg.model.action.dim
    autocast = _autocast(device)
    data = {"observation.images.front": torch.randint(0, 256, (batch, 128, 128, 3), dtype=torch.uint8),
            "observation.state": torch.zeros(batch, 12), "action": torch.zeros(batch, K, D),
            "action_is_pad": torch.zeros(batch, K, dtype=torch.bool), "task": ["pick up the red block"] * batch,
            # oracle labels, so the auxiliary heads' cost is part of a training step as in real runs
            "oracle.waypoint": torch.full((batch, 6), 0.3), "oracle.valid": torch.ones(batch, dtype=torch.bool),
            "oracle.pixel": torch.full((batch, 2), 64.0)}
    opt = torch.optim.AdamW(policy.net.parameters(), lr=1e-5)
    policy.net.train()

    def step():
        with autocast:
            loss, _ = policy.forward(data)
        loss.backward()
        opt.step()
        opt.zero_grad()
    ms = _median_ms(step, steps, sync)
    policy.net.eval()
    del opt
    return batch / (ms / 1000), batch


def run(args) -> int:
    import torch

    from vla import VLAError
    from vla.models.policy.config import presets
    from vla.models.policy.policy import load_policy

    if args.device == "cuda" and not torch.cuda.is_available():
        raise VLAError("--device cuda was asked for but no CUDA device is available; use --device cpu.")
    torch.set_num_threads(max(1, args.threads))
    names = args.preset or ([] if args.policy else [p for p in presets() if args.device == "cuda" or p not in GPU_ONLY])
    results = {name: bench_preset(name, args.device, args.repeats, args.compile) for name in names}
    results |= {path: bench_policy(load_policy(path, device=args.device), args.device, args.repeats, args.compile)
                for path in args.policy or []}
    for name, r in results.items():
        print(f"{name:14s} {args.device}: {r['ms_per_action']:.2f} ms/action, {r['ms_per_chunk']:.1f} ms/chunk "
              f"({r['decoding']}, K={r['horizon']}), autoregressive {r['ms_per_chunk_autoregressive']:.1f} ms/chunk, "
              f"b32 {r['b32_actions_per_s']:.0f} actions/s [{r['method']}], train {r['train_samples_per_s']:.1f} "
              f"samples/s (batch {r['train_batch']}), {r['params_m']:.1f} M params")
        for tag in ("cuda_graph", "compiled_graph"):
            if f"ms_per_chunk_{tag}" in r:
                b32 = f", b32 {r[f'b32_ms_{tag}']:.1f} ms" if f"b32_ms_{tag}" in r else ""
                print(f"{'':14s} {tag}: {r[f'ms_per_chunk_{tag}']:.1f} ms/chunk "
                      f"(eager {r['ms_per_chunk_parallel']:.1f}){b32}")
            if f"{tag}_error" in r:
                print(f"{'':14s} {tag} failed: {r[f'{tag}_error']}")
    if args.json:
        print(json.dumps(results))
    return 0
