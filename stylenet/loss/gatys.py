"""The optimisation of Gatys et al.: the pixels of one image optimised against a PerceptualLoss, with
L-BFGS (the reference) or Adam. Used by python -m stylenet.optimize, the evaluation and the gallery."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from tqdm import tqdm

from stylenet.common.errors import StylenetError
from stylenet.loss.perceptual import PerceptualLoss

METHODS = ("lbfgs", "adam")
INITS = ("content", "noise")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}


class _InRange(torch.autograd.Function):
    """Clamp to [0, 1] on the way forward. On the way back a pixel inside the range gets its gradient; one
    outside gets only the part that leads back into the range (none that would push it further out)."""

    @staticmethod
    def forward(ctx: Any, image: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(image)
        return image.clamp(0, 1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (image,) = ctx.saved_tensors
        return torch.where(image < 0, grad.clamp(max=0), torch.where(image > 1, grad.clamp(min=0), grad))


# The strong-Wolfe line search's evaluations per iteration (torch's own limit when it has the budget).
LINE_SEARCH_EVALUATIONS = 25


def pixel_optimizer(method: str, image: torch.Tensor, lr: float) -> torch.optim.Optimizer:
    """L-BFGS of one iteration per step() with a strong-Wolfe line search (see optimize_image), or Adam."""
    if method == "lbfgs":
        return torch.optim.LBFGS(
            [image],
            lr=lr,
            max_iter=1,
            max_eval=1 + LINE_SEARCH_EVALUATIONS,
            history_size=50,
            line_search_fn="strong_wolfe",
        )
    return torch.optim.Adam([image], lr=lr)


def optimize_image(
    loss_fn: PerceptualLoss,
    content: torch.Tensor,
    *,
    iterations: int,
    method: str = "lbfgs",
    init: str = "content",
    lr: float | None = None,
    on_iteration: Callable[[int, torch.Tensor, dict[str, float]], None] | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, list[dict[str, float]]]:
    """Optimise the pixels of an image (1, 3, H, W) in [0, 1] for `iterations` iterations.

    Returns the image and the loss terms of the image after each iteration (history[i]: after i
    iterations, so history[0] is the starting image's). Iterations are counted as Johnson et al. count
    them: one L-BFGS iteration is one new direction and its line search, which may evaluate the
    loss several times.

    The loss is always the loss of the image clamped to [0, 1], the picture a user gets; a pixel that
    leaves the range still gets the gradient that brings it back (_InRange). A plain clamp inside the
    graph gives such pixels no gradient, so they stay out for good (on a dark photo most of the black
    background did); passing the whole gradient through lets pixels run off outside the range, and
    L-BFGS then stalled on directions that cannot lower the loss; clamping the pixels in place between
    evaluations breaks L-BFGS's curvature pairs and costs 1.7-2.2 times the time; no clamp at all lets the
    optimiser use values the written picture cannot have. BENCHMARKS.md has the comparison.

    One torch LBFGS step() per iteration keeps per-iteration progress; it needs an explicit
    max_eval, because torch's default (max_iter * 5 // 4) is 1 for max_iter=1, which leaves the
    line search no evaluation: a first trial step that does not lower the loss becomes a step of 0,
    and every later step() repeats it (the optimisation stalls). Each step() also starts by
    evaluating the point the previous one accepted; that evaluation is served from the last one made
    when the point is the same (it usually is), so an iteration costs what it would in one long step().
    """
    if method not in METHODS:
        raise StylenetError(f"method must be one of {', '.join(METHODS)}, got '{method}'")
    if init not in INITS:
        raise StylenetError(f"init must be one of {', '.join(INITS)}, got '{init}'")
    with torch.no_grad():
        content_features = loss_fn.encoder(content, [loss_fn.content_layer])[loss_fn.content_layer]
    content = content.contiguous()  # L-BFGS flattens the gradient with view()
    start = content.clone() if init == "content" else torch.rand_like(content)
    image = start.requires_grad_(True)
    optimizer = pixel_optimizer(method, image, DEFAULT_LR[method] if lr is None else float(lr))
    last: dict[str, Any] = {}  # the latest evaluation: where, its gradient, its loss terms

    def closure() -> torch.Tensor:
        if last and torch.equal(image, last["at"]):
            image.grad = last["grad"].clone()
            return last["total"]
        optimizer.zero_grad(set_to_none=True)
        losses = loss_fn(_InRange.apply(image), content_features=content_features)
        losses["total"].backward()
        assert image.grad is not None
        last.update(
            at=image.detach().clone(),
            grad=image.grad.detach().clone(),
            total=losses["total"].detach(),
            terms={name: float(value.detach()) for name, value in losses.items()},
        )
        return losses["total"]

    def terms_now() -> dict[str, float]:
        closure()  # usually served from the line search's last evaluation; else its gradient serves the next step
        return dict(last["terms"])

    history = [terms_now()]
    for iteration in tqdm(range(1, iterations + 1), desc=method, unit="it", disable=not progress, dynamic_ncols=True):
        before = image.detach().clone()
        optimizer.step(closure)  # type: ignore[arg-type]  # L-BFGS takes the closure's tensor as it is
        if method == "lbfgs" and torch.equal(image, before):
            optimizer.state.clear()  # the line search found no step: drop the curvature memory, start again downhill
        losses = terms_now()
        if not math.isfinite(losses["total"]):
            raise StylenetError(f"the loss became NaN or Inf at iteration {iteration}; try a lower lr")
        history.append(losses)
        if on_iteration is not None:
            on_iteration(iteration, image.detach().clamp(0, 1), losses)
    return image.detach().clamp(0, 1), history
