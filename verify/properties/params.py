"""Properties of the params equations: a closed-form count equals the parameters of real models.

``param_count`` builds, at the drawn sizes, every model the count describes that can be imported — lmspec's
own modules (impl/) and torch.nn's equivalents — and compares the number of their parameters with the
count the target computes. Shared tensors count once (``Module.parameters()`` yields a tied Parameter
once), as in the tutorial. Models are built at the drawn (small) sizes on the CPU, leaving torch's global
random stream as it was (the meta device would cost a second on first use).

A model whose constructor takes no per-head widths ties them, ``d_k = d_v = d_e / M``: the count is then
evaluated at ``d_e = M d_k`` and ``d_v = d_k`` (the drawn d_k kept), so that any drawn sizes can be built.
"""

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .._errors import PropertyViolation
from ._base import prop


class _Missing(Exception):
    """The model's module or class does not exist (yet)."""


@dataclass(frozen=True)
class Model:
    """A model a count describes: its number of parameters at given sizes, and
    whether its constructor takes the per-head widths d_k, d_v (if not, it ties them to d_e / M)."""

    name: str
    count: Callable[[Mapping[str, int]], int]
    takes_head_widths: Callable[[], bool] = lambda: True


def numel(model: nn.Module) -> int:
    """The number of parameters, each tensor once (tied Parameters are yielded once)."""
    return sum(p.numel() for p in model.parameters())


def _class(path: str) -> type:
    """``impl.F.Class``: a class of lmspec's impl/ (imported relative to the lmspec package)."""
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(f"...{module}", __package__), name)
    except (ImportError, AttributeError) as exc:
        raise _Missing(path) from exc


def _construct(path: str, sizes: Mapping[str, int], like: str | None = None, **fixed: object) -> nn.Module:
    """``Class(**sizes, **fixed)``, passing each constructor parameter named after an axis of the count
    (the parameters of class ``like`` when the constructor forwards ``*args, **kwargs`` to it)."""
    cls = _class(path)
    params = inspect.signature(_class(like) if like else cls).parameters
    kwargs = {k: int(sizes[k]) for k in params if k in sizes}
    needed = [
        k
        for k, p in params.items()
        if k not in kwargs
        and k not in fixed
        and p.default is inspect.Parameter.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if needed:
        raise PropertyViolation(
            f"param_count cannot build {path}: its constructor needs {', '.join(needed)}, which the "
            f"count's axes ({', '.join(sizes)}) do not give",
            check="property:param_count",
        )
    return cls(**kwargs, **fixed)


def _takes_head_widths(path: str) -> Callable[[], bool]:
    def takes() -> bool:
        try:
            return {"d_k", "d_v"} <= set(inspect.signature(_class(path)).parameters)
        except _Missing:
            return True

    return takes


def impl_model(path: str, **fixed: object) -> Model:
    """A model of lmspec's impl/ at ``module.Class``, built from the sizes its constructor names (and the
    ``fixed`` keyword arguments)."""
    shown = path + "".join(f", {k}={v}" for k, v in fixed.items())
    return Model(shown, lambda sizes: numel(_construct(path, sizes, **fixed)), _takes_head_widths(path))


def _nsp(model: nn.Module, sizes: Mapping[str, int]) -> int:
    """BERT's next-sentence head (W_nsp ∈ ℝ^{2×d_e}, b_nsp ∈ ℝ²): held by a pre-training model, outside
    the tutorial's BERT count. Its parameters are those whose name says nsp; they must be 2 d_e + 2."""
    count = sum(p.numel() for name, p in model.named_parameters() if "nsp" in name.lower())
    want = 2 * sizes["d_e"] + 2
    if count not in (0, want):
        raise PropertyViolation(
            f"param_count: the NSP head of {type(model).__name__} has {count} parameters, expected "
            f"2 d_e + 2 = {want} (W_nsp ∈ ℝ^(2×d_e), b_nsp ∈ ℝ^2)",
            check="property:param_count",
        )
    return count


def _bert(sizes: Mapping[str, int]) -> int:
    """BERTForPreTraining without its NSP head: the backbone and the MLM head."""
    model = _construct("impl.bert.BERTForPreTraining", sizes, like="impl.bert.BERT")
    return numel(model) - _nsp(model, sizes)


def _mlm_head(sizes: Mapping[str, int]) -> int:
    """The MLM head alone: what BERTForPreTraining holds beyond BERT and the NSP head. The head's count
    has the axes v and d_e only; the backbone around it gets one head, one block and three positions."""
    sizes = {"n_max": 3, "M": 1, "L": 1, "d_f": 2, **sizes}
    return _bert(sizes) - numel(_construct("impl.bert.BERT", sizes))


def _bert_part(*names: str) -> Model:
    """The parameters of impl.bert.BERT called ``names`` (its segment embedding G, its pooler W_p, b_p): the
    count has the axis d_e only; the backbone around them gets three tokens, three positions, one head and
    one block."""

    def count(sizes: Mapping[str, int]) -> int:
        model = _construct("impl.bert.BERT", {"v": 3, "n_max": 3, "M": 1, "L": 1, "d_f": 2, **sizes})
        return sum(p.numel() for name, p in model.named_parameters() if name in names)

    return Model(f"impl.bert.BERT ({', '.join(names)})", count, _takes_head_widths("impl.bert.BERT"))


def _torch_ffn(s: Mapping[str, int]) -> nn.Module:
    return nn.Sequential(nn.Linear(s["d_e"], s["d_f"]), nn.GELU(), nn.Linear(s["d_f"], s["d_e"]))


def _torch_layer(s: Mapping[str, int]) -> nn.Module:
    return nn.TransformerEncoderLayer(s["d_e"], s["M"], s["d_f"], batch_first=True)


def _torch(name: str, build: Callable[[Mapping[str, int]], nn.Module], heads: bool = True) -> Model:
    return Model(name, lambda sizes: numel(build(sizes)), lambda: heads)


#: For each option ``model`` of a ``param_count`` invariant, the models the count describes.
MODELS: dict[str, tuple[Model, ...]] = {
    "embedding": (_torch("torch.nn.Embedding(v, d_e)", lambda s: nn.Embedding(s["v"], s["d_e"])),),
    "positional": (
        impl_model("impl.positional.LearnedPositionalEncoding"),
        _torch("torch.nn.Embedding(n_max, d_e)", lambda s: nn.Embedding(s["n_max"], s["d_e"])),
    ),
    "layer_norm": (
        impl_model("impl.norm.LayerNorm"),
        _torch("torch.nn.LayerNorm(d_e)", lambda s: nn.LayerNorm(s["d_e"])),
    ),
    "mha": (
        impl_model("impl.attention.MultiHeadAttention"),
        _torch(
            "torch.nn.MultiheadAttention(d_e, M)", lambda s: nn.MultiheadAttention(s["d_e"], s["M"]), False
        ),
    ),
    "mha_no_bias": (
        _torch(
            "torch.nn.MultiheadAttention(d_e, M, bias=False)",
            lambda s: nn.MultiheadAttention(s["d_e"], s["M"], bias=False),
            False,
        ),
    ),
    "ffn": (
        impl_model("impl.transformer.FFN"),
        _torch("torch.nn.Sequential(Linear(d_e, d_f), GELU(), Linear(d_f, d_e))", _torch_ffn),
    ),
    "block": (
        impl_model("impl.transformer.TransformerBlock", norm_first=True),
        impl_model("impl.transformer.TransformerBlock", norm_first=False),
        _torch("torch.nn.TransformerEncoderLayer(d_e, M, d_f)", _torch_layer, False),
    ),
    "stack": (
        impl_model("impl.transformer.TransformerStack", norm_first=True),
        impl_model("impl.transformer.TransformerStack", norm_first=False),
        _torch(
            "torch.nn.TransformerEncoder(layer, L)",
            lambda s: nn.TransformerEncoder(_torch_layer(s), s["L"], enable_nested_tensor=False),
            False,
        ),
    ),
    "segment": (
        _bert_part("G"),
        _torch("torch.nn.Embedding(2, d_e)", lambda s: nn.Embedding(2, s["d_e"])),
    ),
    "pooler": (
        _bert_part("W_p", "b_p"),
        _torch("torch.nn.Linear(d_e, d_e)", lambda s: nn.Linear(s["d_e"], s["d_e"])),
    ),
    "gpt2": (impl_model("impl.gpt2.GPT2"),),
    "bert_backbone": (impl_model("impl.bert.BERT"),),
    "mlm_head": (
        Model(
            "impl.bert.BERTForPreTraining − BERT − NSP head",
            _mlm_head,
            _takes_head_widths("impl.bert.BERT"),
        ),
    ),
    "bert": (
        Model(
            "impl.bert.BERTForPreTraining − NSP head",
            _bert,
            _takes_head_widths("impl.bert.BERT"),
        ),
    ),
}


def _tied(sizes: Mapping[str, int]) -> dict[str, int]:
    """The sizes with ``d_e = M d_k`` and ``d_v = d_k``: heads of width d_e / M."""
    out = dict(sizes)
    if "d_k" in out:
        out["d_e"] = out["M"] * out["d_k"]
        out["d_v"] = out["d_k"]
    return out


@prop("param_count", "the closed-form count equals the number of parameters of the models it describes")
def _param_count(eq, target, example, data, options, tol):
    key = options["model"]
    output = eq.outputs[0].ascii
    built = 0
    for model in MODELS[key]:
        sizes = dict(example.sizes) if model.takes_head_widths() else _tied(example.sizes)
        try:
            with torch.random.fork_rng(devices=[]):  # initialisation draws leave the global stream alone
                want = model.count(sizes)
        except _Missing:
            continue
        got = target({}, sizes)[output]
        if float(got) != want:
            shown = ", ".join(f"{k}={sizes[k]}" for k in eq.axes)
            raise PropertyViolation(
                f"{target.name} violates param_count: {got:.0f} parameters at {shown}, but {model.name} "
                f"holds {want}",
                check="property:param_count",
                details={"max_abs": abs(float(got) - want), "max_rel": abs(float(got) - want) / max(want, 1)},
            )
        built += 1
    if not built:
        names = ", ".join(m.name for m in MODELS[key])
        raise PropertyViolation(
            f"param_count of {eq.id}: none of its models exists to count ({names})",
            check="property:param_count",
        )
