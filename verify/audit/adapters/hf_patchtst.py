# ruff: noqa: F722
"""Built-in audit targets of transformers' PatchTST (5.23): its patching and input embedding against
``timeseries.patching`` and ``timeseries.input``, with random weights.

What PatchTSTModel computes before its first encoder layer (modeling_patchtst, read and run):

1. ``PatchTSTScaler`` standardises each series (``scaling="std"``, the default; ``"mean"``; ``None`` or
   ``False``: PatchTSTNOPScaler, the identity). Not in the tutorial's equation (whose note leaves RevIN
   out too): the built-ins build the model with ``scaling=None``.
2. ``PatchTSTPatchify``: ``N = ⌊(L_in − P)/S⌋ + 1`` patches (``(max(L, P) − P) // stride + 1``), taken from
   ``past_values[:, sequence_start:]`` with ``sequence_start = L_in − ((N − 1) S + P)`` and
   ``unfold(-2, P, S)``: the patches END at the last value and the first ``r = (L_in − P) mod S`` values are
   DROPPED. That is the spec's variant ``timeseries.patching[drop_start]``, ``X_p^{(i)} =
   unfold_{P,S}(X_{i, r+1:L_in})``, which the built-in is held to. The equation itself pads the end with S
   copies of the last value (N = ⌊(L_in − P)/S⌋ + 2, as PatchTST's official code does with
   ReplicationPad1d((0, S))); its variant no_padding has transformers' N but keeps the first values and drops
   the last ``(L_in − P) mod S``. The three agree on the first N patches only when S divides L_in − P (then
   no_padding and drop_start are one). transformers also refuses ``L_in = P`` (context_length must exceed
   patch_length), which the spec allows.
3. ``PatchTSTEmbedding``: ``nn.Linear(P, d_model)`` on each patch, with bias: its weight (out × in) is the
   spec's ``W_p ∈ ℝ^{d_e×P}`` as is. ``share_embedding=True`` (the default) shares it across variables, the
   spec's channel independence; ``share_embedding=False`` gives each variable its own Linear, which the spec
   has no form for.
4. ``PatchTSTPositionalEncoding``: ``+ position_enc`` (N × d_model), learned (``positional_encoding_type=
   "random"``: the spec's ``W_posᵀ``) or fixed (``"sincos"``, the config's default: a sinusoidal table
   centred on its mean and divided by 10 × its std, a frozen parameter). ``use_cls_token=True`` prepends a
   class token per variable (N + 1 positions), which the spec has not: the built-ins keep it off.

The built-ins call ``PatchTSTModel(config)(past_values)`` with ``num_hidden_layers=0``: the model's own
forward runs the scaler, PatchTSTPatchify, PatchTSTEncoder's embedder and positional encoder as it always
does, and its ``last_hidden_state`` is then the encoder's input (the tensor that ``hidden_states[0]`` of a
deeper model holds). Each callable is written in the spec's names like impl/timeseries.py (a series is
``(*batch, L_in, d_x)``, time steps in rows: PatchTST's ``past_values``); the spec's weights replace the
model's through ``torch.func.functional_call`` (_hf.run_module), so gradients reach them.
"""

import functools
from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor

from ._hf import _transformers, rows, run_module
from ._registry import builtin

#: The config of every built-in beyond the sizes: no scaling, learned positions, no class token, one shared
#: Linear, no masking, no dropout, and no encoder layer (the model's output is the encoder's input).
PATCHTST_BASE = dict(
    scaling=None,
    positional_encoding_type="random",
    use_cls_token=False,
    share_embedding=True,
    do_mask_input=False,
    positional_dropout=0.0,
    num_hidden_layers=0,
    num_attention_heads=1,
)


# --- building and calling PatchTSTModel ---------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _model(config: tuple, device: str, dtype: torch.dtype) -> torch.nn.Module:
    """``PatchTSTModel`` of a config (one per sizes, device and dtype), in eval mode; its weights are replaced
    at every call. Its random initialisation leaves torch's global random stream as it was."""
    tf = _transformers()
    with torch.random.fork_rng(devices=[]):
        model = tf.PatchTSTModel(tf.PatchTSTConfig(**dict(config)))
    return model.to(device=device, dtype=dtype).eval()


def patchtst_config(**sizes) -> tuple:
    """PatchTSTConfig keyword arguments (PATCHTST_BASE and ``sizes``) as a cache key."""
    return tuple(sorted({**PATCHTST_BASE, **sizes}.items()))


def patchtst_weights(W_p: Tensor, b_p: Tensor, W_pos: Tensor) -> dict[str, Tensor]:
    """The spec's ``W_p ∈ ℝ^{d_e×P}``, ``b_p`` and ``W_pos ∈ ℝ^{d_e×N}`` as PatchTSTModel's parameters:
    nn.Linear(P, d_e) holds out × in (W_p as is), position_enc holds one row per patch (W_posᵀ)."""
    return {
        "encoder.embedder.input_embedding.weight": W_p,
        "encoder.embedder.input_embedding.bias": b_p,
        "encoder.positional_encoder.position_enc": W_pos.transpose(0, 1),
    }


def _encoder_input(who: str, X: Tensor, W_p: Tensor, b_p: Tensor, W_pos: Tensor, stride: int) -> Tensor:
    """``PatchTSTModel(past_values=X).last_hidden_state`` with no encoder layer, ``(*batch, d_x, N, d_e)``."""
    d_e, P = W_p.shape
    L_in, d_x = X.shape[-2:]
    if stride < 1 or L_in <= P:
        raise ValueError(
            f"{who} needs a stride S ≥ 1 and L_in > P (PatchTSTPatchify refuses context_length ≤ "
            f"patch_length), found L_in={L_in}, P={P}, S={stride}"
        )
    N = (L_in - P) // stride + 1
    if W_pos.shape[-1] != N:
        raise ValueError(
            f"{who}: PatchTSTPatchify cuts L_in={L_in} into ⌊(L_in − P)/S⌋ + 1 = {N} patches (P={P}, "
            f"S={stride}), but W_pos has N={W_pos.shape[-1]} positions"
        )
    series, lead = rows(X)  # (B, L_in, d_x)
    config = patchtst_config(
        num_input_channels=d_x, context_length=L_in, patch_length=P, patch_stride=stride, d_model=d_e
    )
    model = _model(config, str(series.device), series.dtype)
    out = run_module(model, patchtst_weights(W_p, b_p, W_pos), past_values=series)
    U = out.last_hidden_state  # (B, d_x, N, d_e)
    return U.reshape(*lead, *U.shape[-3:])


_PATCHTST_MAPPING = {
    "X": "past_values (batch, L_in, d_x): one row per time step (context_length = L_in)",
    "W_p": "encoder.embedder.input_embedding.weight (nn.Linear(P, d_model), out × in: W_p as is)",
    "b_p": "encoder.embedder.input_embedding.bias",
    "W_pos": "encoder.positional_encoder.position_enc = W_posᵀ (positional_encoding_type='random')",
    "P": "patch_length",
    "S_p": "patch_stride",
    "d_x": "num_input_channels (share_embedding=True: one W_p for every variable)",
    "d_e": "d_model",
    "U": "last_hidden_state (batch, d_x, N, d_e), num_hidden_layers=0 (hidden_states[0] of a deeper model)",
}


@builtin(
    "transformers.PatchTSTModel",
    "timeseries.patching[drop_start]",
    description=(
        "Hugging Face PatchTSTModel(past_values) with num_hidden_layers=0: its last_hidden_state is the "
        "encoder's input, PatchTSTPositionalEncoding(PatchTSTEmbedding(PatchTSTPatchify(x))) as the model "
        "computes it. Built with scaling=None (the NOP scaler: PatchTSTScaler's std/mean standardisation "
        "is not in the tutorial's equation), positional_encoding_type='random' (a learned W_pos), "
        "use_cls_token=False, share_embedding=True (channel independence). Held to the variant drop_start: "
        "PatchTSTPatchify cuts N = ⌊(L_in − P)/S⌋ + 1 patches that END at the last value, dropping the "
        "FIRST r = (L_in − P) mod S values (sequence_start = L_in − ((N − 1) S + P)), X_p = "
        "unfold_{P,S}(X_{i, r+1:L_in}). The equation itself pads the end with S copies of the last value "
        "(N + 1 patches, PatchTST's official ReplicationPad1d) and its variant no_padding drops the LAST "
        "r values: against no_padding the audit fails on the values whenever S does not divide L_in − P. "
        "transformers also needs L_in > P."
    ),
    mapping=_PATCHTST_MAPPING,
    group="hf",
)
def _patchtst_patching() -> Callable:
    def patchtst_patching(
        X: Float[Tensor, "*batch L_in d_x"],
        W_p: Float[Tensor, "d_e P"],
        b_p: Float[Tensor, " d_e"],
        W_pos: Float[Tensor, "d_e N_p"],
        S_p: int,
    ) -> Float[Tensor, "*batch d_x N_p d_e"]:
        return _encoder_input("transformers.PatchTSTModel", X, W_p, b_p, W_pos, S_p)

    return patchtst_patching


@builtin(
    "transformers.PatchTSTModel[patch_length=1]",
    "timeseries.input",
    description=(
        "Hugging Face PatchTSTModel(past_values) on one variable with patch_length = patch_stride = 1 (the "
        "config's defaults), num_hidden_layers=0: each time step is a patch of one value, so the encoder's "
        "input is u_t = W_p x_t + b_p + λ_t, the TST input of timeseries.input with m = 1 (fixed: "
        "PatchTST is channel independent, so with m > 1 variables it never mixes them as the spec's "
        "W_p ∈ ℝ^{d_e×m} does). position_enc holds exactly one learned position per time step "
        "(context_length = n), so Λ has n_max = n columns (tied; transformers needs n > 1). Built with "
        "scaling=None, "
        "positional_encoding_type='random', use_cls_token=False. The other transformers time-series "
        "models do not have this form: TimeSeriesTransformer, Informer and Autoformer embed lagged and "
        "time features with a Linear without bias (TimeSeriesValueEmbedding), add fixed sinusoidal "
        "positions and, except Autoformer, a layer norm."
    ),
    mapping={
        "X": "past_values (batch, n, 1): one variable, context_length = n",
        "W_p": "encoder.embedder.input_embedding.weight (nn.Linear(1, d_model): W_p ∈ ℝ^{d_e×1} as is)",
        "b_p": "encoder.embedder.input_embedding.bias",
        "Lambda": "encoder.positional_encoder.position_enc = Λᵀ (one row per time step: n_max = n)",
        "d_x": "num_input_channels = 1",
        "d_e": "d_model",
        "U": "last_hidden_state[:, 0] (batch, n, d_e) with num_hidden_layers=0",
    },
    sizes={"d_x": 1},
    derive={"n": "n_max"},
    group="hf",
)
def _patchtst_input() -> Callable:
    def patchtst_input(
        X: Float[Tensor, "*batch n d_x"],
        W_p: Float[Tensor, "d_e d_x"],
        b_p: Float[Tensor, " d_e"],
        Lambda: Float[Tensor, "d_e n_max"],
    ) -> Float[Tensor, "*batch n d_e"]:
        who = "transformers.PatchTSTModel[patch_length=1]"
        n, d_x, n_max = X.shape[-2], X.shape[-1], Lambda.shape[-1]
        if d_x != 1 or n != n_max:
            raise ValueError(
                f"{who} needs one variable (d_x = 1: PatchTST never mixes variables) and one position per "
                f"time step (n = n_max: position_enc has context_length rows), found d_x={d_x}, n={n}, "
                f"n_max={n_max}"
            )
        U = _encoder_input(who, X, W_p, b_p, Lambda, 1)  # (*batch, 1, n, d_e): one patch per time step
        return U.squeeze(-3)

    return patchtst_input


__all__ = ["PATCHTST_BASE", "patchtst_config", "patchtst_weights"]
