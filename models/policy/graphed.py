"""Parallel decoding of a whole action chunk with static shapes, replayed from a CUDA graph on a GPU.

At batch 1 a policy's forward pass is a thousand small kernels, and eager PyTorch spends more time launching
them than the GPU spends running them. `GraphedChunk` fixes every shape (batch B, the instruction padded to
`text_tokens`), captures one forward pass (vision -> bridge -> LM -> constrained argmax) into a CUDA graph, and
then each call copies its inputs into the graph's buffers and replays it. On a CPU the same static-shape function
runs eagerly, so results can be compared anywhere.

    runner = GraphedChunk(policy.net, batch=1)                  # captures on CUDA
    actions = runner(images_uint8, state, ["pick up the red block"])   # (B, K, D)
"""
from __future__ import annotations

from contextlib import nullcontext

import torch

from vla import VLAError


class GraphedChunk:
    def __init__(self, net, batch: int = 1, image_hw: tuple[int, int] = (128, 128), text_tokens: int | None = None,
                 bf16: bool = True, warmup: int = 3, compile: bool = False):
        """net: a VLANet in eval mode on its device. bf16: autocast on CUDA (ignored on a CPU). compile: run the
        function through torch.compile (fused kernels) before capturing it."""
        if net.cfg.action.decoding != "parallel":
            raise VLAError("CUDA graphs replay parallel decoding only; this policy decodes autoregressively.")
        impl = getattr(net.llm.config, "_attn_implementation", "sdpa")
        if impl != "sdpa":
            raise VLAError(f"CUDA graphs need the LM's sdpa attention (this one uses {impl!r}).")
        if batch < 1:
            raise VLAError(f"batch must be 1 or more, got {batch}.")
        self.net, self.batch = net.eval(), batch
        self.text_tokens = int(text_tokens or net.cfg.max_text_tokens)
        device = net.action_queries.device
        self.cuda = device.type == "cuda"
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False) \
            if self.cuda and bf16 else nullcontext()
        h, w = image_hw
        self.inputs = {"images": torch.zeros(batch, h, w, 3, dtype=torch.uint8, device=device),
                       "state": torch.zeros(batch, net.cfg.state_dim, device=device),
                       "ids": torch.full((batch, self.text_tokens), net.tokenizer.pad_token_id or 0, device=device),
                       "mask": torch.ones(batch, self.text_tokens, dtype=torch.long, device=device),
                       "goal": torch.full((batch, 2), float("nan"), device=device)}
        self.graph, self.out = None, None
        self._fn = torch.compile(self.tokens, dynamic=False) if compile else self.tokens
        if self.cuda:
            self._capture(warmup)

    @torch.no_grad()
    def tokens(self, images, state, ids, mask, goal) -> torch.Tensor:
        """The captured function: static-shape inputs -> local action-token indices (B, K*D)."""
        with self.autocast:
            embeds, prefix_mask, _ = self.net.prefix_parts(images, state, ids, mask, teacher_goal=goal)
            return self.net._decode_parallel(embeds, prefix_mask, dense=True)

    def _capture(self, warmup: int) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):                        # lazy initialisation (cuBLAS handles, workspaces)
                self._fn(**self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = self._fn(**self.inputs)

    @torch.no_grad()
    def __call__(self, images, state, texts: list[str], goal=None) -> torch.Tensor:
        """images uint8 (B, H, W, 3), state (B, state_dim), B instructions, goal (B, 2) metres (NaN rows or None:
        the grounding head's own; an attached goal pointer is asked when None) -> actions (B, K, D)."""
        if len(texts) != self.batch or images.shape[0] != self.batch:
            raise VLAError(f"this runner was captured for batch {self.batch}; got {images.shape[0]} images and "
                           f"{len(texts)} instructions.")
        if tuple(images.shape[1:]) != tuple(self.inputs["images"].shape[1:]):
            raise VLAError(f"this runner was captured for images of shape {tuple(self.inputs['images'].shape[1:])}, "
                           f"got {tuple(images.shape[1:])}.")
        ids, mask = self.net.encode_text(texts, "cpu", length=self.text_tokens)
        if goal is None and self.net.goal_pointer is not None:
            device = self.inputs["images"].device
            goal = self.net.goal_pointer.predict(images.to(device), list(texts), torch.as_tensor(state).to(device))
        new = {"images": images, "state": state, "ids": ids, "mask": mask,
               "goal": torch.full((self.batch, 2), float("nan")) if goal is None else goal}
        for name, value in new.items():
            self.inputs[name].copy_(torch.as_tensor(value).reshape(self.inputs[name].shape), non_blocking=True)
        if self.graph is None:
            local = self._fn(**self.inputs)
        else:
            self.graph.replay()
            local = self.out
        K, D = self.net.cfg.action.horizon, self.net.cfg.action.dim
        return self.net.actions.decode_local(local.view(-1, K, D)).clone()
