# ruff: noqa: F722
"""Built-in audit targets of training: one step of ``torch.optim.SGD`` (with and without weight decay),
``torch.optim.AdamW``, and ``torch.optim.Adam`` with weight decay (the coupled L2 form), from the spec's
parameters and gradient (torch 2.13).

Each built-in does what a training loop does, once: it builds the optimizer over a copy of θ, sets the
copy's ``.grad`` to g, gives Adam its state (``exp_avg`` = m, ``exp_avg_sq`` = s, ``step`` = t − 1: torch
counts the step it takes, so the step it runs is the spec's t), calls ``step()`` and returns the updated
parameter (and, where the equation outputs them, the moments torch keeps in its state). torch.optim updates
a tensor of any shape entry by entry, so the audit's batch axes stay on the parameter: a batch of examples
is one parameter tensor ``(*batch, d_θ)``; the spec's scalars (η, λ, ε, t) are one optimizer's
hyper-parameters.

**Gradients.** ``step()`` runs under ``torch.no_grad()`` and updates the parameter in place, so autograd
never sees it: through the default step the audit's gradient check would find no gradient at all. torch
offers ``differentiable=True`` for optimising through an optimizer step (meta-learning); the step then
runs with autograd on, over a parameter that is not a leaf (a leaf that requires grad cannot be updated in
place). The built-ins take that path exactly when autograd is to go through them (an input requires
grad: the gradient check), over ``theta.clone()``; otherwise they run the default step users run, over an
``nn.Parameter`` copy. Both are torch.optim's own code (for SGD the same lines; for Adam the tensor-step
branch its ``capturable`` mode shares), and a test holds them to the same values.

**Hyper-parameters.** ``HYPER`` (the keyword each spec scalar is passed as) and ``STATE`` (the state entry
each moment is) are module-level so that a test can break the mapping. β₁ = 0.9, β₂ = 0.999 are constants
of training.adamw and torch's default ``betas``; they are passed all the same. The step count is held in
the parameter's precision (float64 for a float64 audit; torch's own default is float32 unless the default
dtype is float64, which rounds the spec's real t).

**SGD with weight decay** is torch's L2 step θ′_L₂ = θ − η(g + λθ) and nothing else: torch computes no
penalty R_λ(θ), exposes no penalised gradient g_λ and has no decoupled SGD step, so
``torch.optim.SGD[weight_decay]`` returns θ′_L₂ alone and is bound to training.weight_decay through
``WEIGHT_DECAY_LAYOUT`` (a subset of the outputs: the audit checks θ′_L₂, gives the gradient check's
cotangent to it alone, and skips the properties that read the other three). Computing the other three here
would audit this module's arithmetic, not torch.

**Adam with weight decay** (``torch.optim.Adam[weight_decay]``) is registered against training.adamw to
show a real difference: its decay is coupled (L2), and the audit's verdict is ``variant``, matching
training.adamw[l2_coupled], whose invariant is torch.optim.Adam's own step.
"""

from collections.abc import Callable, Mapping

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ._registry import builtin

#: torch.optim's keyword for each of the spec's hyper-parameters.
HYPER = {"eta": "lr", "lam": "weight_decay", "eps": "eps"}
#: torch.optim's Adam state entry for each of the spec's moments.
STATE = {"m": "exp_avg", "s": "exp_avg_sq"}
#: β₁, β₂ of training.adamw: torch's ``betas`` (its defaults).
BETAS = (0.9, 0.999)


# --- one step ----------------------------------------------------------------------------------------------
def one_step(
    optimizer: type[torch.optim.Optimizer],
    theta: Tensor,
    g: Tensor,
    hyper: Mapping[str, float],
    moments: Mapping[str, Tensor] | None = None,
    t: float | None = None,
    **options,
) -> tuple[Tensor, dict[str, Tensor]]:
    """One ``optimizer.step()`` from θ with gradient g: the updated parameter and the optimizer's state.

    ``hyper`` holds the spec's scalars by spec name (``eta``, ``lam``, ``eps``), passed under torch's names
    (``HYPER``); ``moments`` the spec's moments (``m``, ``s``), set as the state entries ``STATE`` names;
    ``t`` the step count of the step taken (torch's ``state["step"]`` is t − 1 before it); ``options`` go
    to the optimizer as they are (``betas``)."""
    if moments is not None and t is None:
        raise ValueError(f"one_step({optimizer.__name__}): moments given without the step count t")
    tensors = (theta, g, *(moments or {}).values())
    differentiable = torch.is_grad_enabled() and any(x.requires_grad for x in tensors)
    if differentiable:  # autograd through step(): a non-leaf copy, updated in place on the graph
        param = theta.clone()
        param.grad = g
    else:  # the step users run: a leaf parameter, updated under no_grad
        param = nn.Parameter(theta.detach().clone())
        param.grad = g.detach().clone()
    kwargs = {HYPER[name]: float(value) for name, value in hyper.items() if name in HYPER}
    opt = optimizer([param], differentiable=differentiable, **kwargs, **options)
    if moments is not None:
        step_dtype = torch.float64 if theta.dtype == torch.float64 else torch.float32
        state = {STATE[name]: value.clone() for name, value in moments.items() if name in STATE}
        state["step"] = torch.tensor(float(t) - 1.0, dtype=step_dtype)  # on the CPU, as torch keeps it
        opt.state[param].update(state)
    opt.step()
    return (param if differentiable else param.detach()), opt.state[param]


# --- torch.optim.SGD ---------------------------------------------------------------------------------------
@builtin(
    "torch.optim.SGD",
    "training.sgd",
    description=(
        "torch.optim.SGD([p], lr=η) (momentum 0, weight_decay 0: the defaults), p a copy of θ with "
        "p.grad = g, one step(): p ← p − lr·grad. The gradient check differentiates through step() with "
        "differentiable=True (over a non-leaf copy of θ)."
    ),
    mapping={
        "theta": "the parameter p (a copy of θ; *batch axes kept: the step acts entry by entry)",
        "g": "p.grad",
        "eta": "lr",
        "theta_next": "p after optimizer.step()",
    },
)
def _sgd() -> Callable:
    def sgd(
        theta: Float[Tensor, "*batch d_theta"], g: Float[Tensor, "*batch d_theta"], eta: float
    ) -> Float[Tensor, "*batch d_theta"]:
        theta_next, _ = one_step(torch.optim.SGD, theta, g, {"eta": eta})
        return theta_next

    return sgd


#: How ``sgd_weight_decay`` binds to training.weight_decay: it returns θ′_L₂ alone (a subset of the outputs).
WEIGHT_DECAY_LAYOUT = "theta=*batch d_theta, g=*batch d_theta, eta=(), lam=() -> theta_l2=*batch d_theta"
WEIGHT_DECAY_DESCRIPTION = (
    "torch.optim.SGD([p], lr=η, weight_decay=λ) (momentum 0), p a copy of θ with p.grad = g, one step(): "
    "torch adds λp to the gradient, grad ← g + λp, then p ← p − lr·grad, the L2 form θ′_L₂ = θ − η(g + λθ). "
    "It returns θ′_L₂ alone: torch never computes the penalty R_λ(θ), the penalised gradient g_λ (a local "
    "of its step) or a decoupled SGD step, so the audit checks θ′_L₂ and skips the properties that read "
    "the rest (WEIGHT_DECAY_LAYOUT). The gradient check differentiates through step() with "
    "differentiable=True."
)
WEIGHT_DECAY_MAPPING = {
    "theta": "the parameter p (a copy of θ; *batch axes kept: the step acts entry by entry)",
    "g": "p.grad",
    "eta": "lr",
    "lam": "weight_decay",
    "theta_l2": "p after optimizer.step()",
    "penalty": "not returned: torch adds λp to the gradient, it never computes (λ/2)‖p‖²",
    "g_l2": "not returned: grad + λp is a local of torch's step",
    "theta_dec": "not returned: torch.optim.SGD has no decoupled decay (for SGD it equals θ′_L₂)",
}


@builtin(
    "torch.optim.SGD[weight_decay]",
    "training.weight_decay",
    description=WEIGHT_DECAY_DESCRIPTION,
    mapping=WEIGHT_DECAY_MAPPING,
    layout=WEIGHT_DECAY_LAYOUT,
)
def sgd_weight_decay() -> Callable:
    """The factory of ``torch.optim.SGD[weight_decay]`` (bound through WEIGHT_DECAY_LAYOUT)."""

    def sgd_weight_decay(
        theta: Float[Tensor, "*batch d_theta"], g: Float[Tensor, "*batch d_theta"], eta: float, lam: float
    ) -> Float[Tensor, "*batch d_theta"]:
        theta_l2, _ = one_step(torch.optim.SGD, theta, g, {"eta": eta, "lam": lam})
        return theta_l2

    return sgd_weight_decay


# --- torch.optim.AdamW and Adam ----------------------------------------------------------------------------
def _adam(optimizer: type[torch.optim.Optimizer]) -> Callable:
    def adam(
        theta: Float[Tensor, "*batch d_theta"],
        g: Float[Tensor, "*batch d_theta"],
        m: Float[Tensor, "*batch d_theta"],
        s: Float[Tensor, "*batch d_theta"],
        eta: float,
        lam: float,
        eps: float,
        t: float,
    ) -> tuple[
        Float[Tensor, "*batch d_theta"], Float[Tensor, "*batch d_theta"], Float[Tensor, "*batch d_theta"]
    ]:
        theta_next, state = one_step(
            optimizer, theta, g, {"eta": eta, "lam": lam, "eps": eps}, {"m": m, "s": s}, t, betas=BETAS
        )
        return theta_next, state[STATE["m"]], state[STATE["s"]]

    adam.__name__ = adam.__qualname__ = optimizer.__name__.lower()
    return adam


ADAM_MAPPING = (
    ("theta", "the parameter p (a copy of θ; *batch axes kept: the step acts entry by entry)"),
    ("g", "p.grad"),
    ("m", "optimizer.state[p]['exp_avg'] before the step"),
    ("s", "optimizer.state[p]['exp_avg_sq'] before the step"),
    ("t", "optimizer.state[p]['step'] = t − 1 before the step (torch counts the step it takes)"),
    ("eta", "lr"),
    ("lam", "weight_decay"),
    ("eps", "eps"),
    ("β₁, β₂", "betas = (0.9, 0.999)"),
    ("theta_next", "p after optimizer.step()"),
    ("m_next", "optimizer.state[p]['exp_avg'] after the step"),
    ("s_next", "optimizer.state[p]['exp_avg_sq'] after the step"),
)


@builtin(
    "torch.optim.AdamW",
    "training.adamw",
    description=(
        "torch.optim.AdamW([p], lr=η, betas=(0.9, 0.999), eps=ε, weight_decay=λ), p a copy of θ with "
        "p.grad = g and the state exp_avg = m, exp_avg_sq = s, step = t − 1; one step(). torch decays "
        "first, p ← (1 − ηλ)p, then steps by −η m̂/(√v̂ + ε) with m̂ = exp_avg/(1 − β₁ᵗ), "
        "√v̂ = √exp_avg_sq/√(1 − β₂ᵗ): the spec's decoupled update, the decay kept out of the moments. "
        "The gradient check differentiates through step() with differentiable=True."
    ),
    mapping=ADAM_MAPPING,
)
def _adamw() -> Callable:
    return _adam(torch.optim.AdamW)


@builtin(
    "torch.optim.Adam[weight_decay]",
    "training.adamw",
    description=(
        "torch.optim.Adam([p], lr=η, betas=(0.9, 0.999), eps=ε, weight_decay=λ), set up and stepped as "
        "torch.optim.AdamW. Registered against training.adamw to show a real difference: Adam's "
        "weight_decay is an L2 penalty (decoupled_weight_decay=False, the default), grad ← g + λθ before "
        "the moments, so the decay is scaled by 1/(√v̂ + ε) like the gradient. The audit's verdict is "
        "variant: its values, gradient and torch.optim.Adam's own step are training.adamw[l2_coupled]."
    ),
    mapping=ADAM_MAPPING,
)
def _adam_weight_decay() -> Callable:
    return _adam(torch.optim.Adam)
