"""Prose for the rendered spec: the catalogue's Unicode notes as LaTeX, HTML and Markdown.

The notes, titles and meanings of the catalogue are written in plain Unicode with the tutorial's
notation inline (``c_t = f_t ⊙ c_{t−1}``, ``W_Q^{(m)}``, ``ℝ^{d_e×v}``, ``torch.nn.LSTM``). ``pieces``
cuts such a text into three kinds of run — prose, math (a symbol with its sub- and superscripts, a Greek
letter, an operator) and code (dotted Python names, snake_case identifiers, backticks) — and each format
writes the runs its own way: LaTeX math and escaped text for TeX, ``<sub>``/``<sup>`` and ``<code>`` for
HTML, GitHub's ``$`…`$`` inline math and escaped text for Markdown.

Characters that no format knows are collected in ``UNKNOWN`` (and written as ``?``): the tests require
the whole catalogue to leave it empty.
"""

import html
import re
import unicodedata

from ..axes import GLOSSARY

#: Characters met that have no LaTeX form here (the renderer wrote ``?``).
UNKNOWN: set[str] = set()

# ------------------------------------------------------------------------------------- characters
GREEK = {
    "α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "δ": r"\delta", "ε": r"\varepsilon", "ζ": r"\zeta",
    "η": r"\eta", "θ": r"\theta", "ι": r"\iota", "κ": r"\kappa", "λ": r"\lambda", "μ": r"\mu",
    "ν": r"\nu", "ξ": r"\xi", "π": r"\pi", "ρ": r"\rho", "σ": r"\sigma", "ς": r"\varsigma",
    "τ": r"\tau", "υ": r"\upsilon", "φ": r"\phi", "χ": r"\chi", "ψ": r"\psi", "ω": r"\omega",
    "Γ": r"\Gamma", "Δ": r"\Delta", "Θ": r"\Theta", "Λ": r"\Lambda", "Ξ": r"\Xi", "Π": r"\Pi",
    "Σ": r"\Sigma", "Φ": r"\Phi", "Ψ": r"\Psi", "Ω": r"\Omega",
}  # fmt: skip
LETTERS = {
    **GREEK,
    "ℓ": r"\ell", "ℝ": r"\mathbb{R}", "ℕ": r"\mathbb{N}", "𝓛": r"\mathcal{L}", "𝓜": r"\mathcal{M}",
    "𝒟": r"\mathcal{D}", "𝟙": r"\mathbf{1}", "∇": r"\nabla", "∂": r"\partial",
}  # fmt: skip
OPERATORS = {
    "×": r"\times", "·": r"\cdot", "−": "-", "⊙": r"\odot", "∈": r"\in", "≤": r"\le", "≥": r"\ge",
    "≪": r"\ll", "≫": r"\gg", "≈": r"\approx", "→": r"\to", "←": r"\leftarrow", "↦": r"\mapsto",
    "∞": r"\infty", "√": r"\surd", "‖": r"\|", "•": r"\bullet", "⌈": r"\lceil", "⌉": r"\rceil",
    "⌊": r"\lfloor", "⌋": r"\rfloor", "∪": r"\cup", "≠": r"\ne", "±": r"\pm", "∑": r"\sum",
}  # fmt: skip
SUPERSCRIPTS = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁻ᵀ", [*"0123456789", "-", r"\top"], strict=True))
SUBSCRIPTS = dict(zip("₀₁₂₃₄₅₆₇₈₉", "0123456789", strict=True))
ACCENTS = {"\u0302": r"\hat", "\u0303": r"\tilde"}
TEXT = {
    "§": r"\ensuremath{\S}", "–": "--", "—": "---", "…": r"\ldots{}", "’": "'", "‘": "`", "“": "``",
    "”": "''",
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "^": r"\textasciicircum{}",
    "~": r"\textasciitilde{}", "#": r"\#", "$": r"\$", "%": r"\%", "&": r"\&", "<": r"\ensuremath{<}",
    ">": r"\ensuremath{>}", "|": r"\ensuremath{|}", "\u00a0": "~",
}  # fmt: skip
_MODIFIERS = set(SUPERSCRIPTS) | set(SUBSCRIPTS)
FUNCTIONS = {"log", "exp", "sin", "cos", "tanh", "max", "min", "arg"}
MATH_LETTER = "".join(LETTERS)

# ------------------------------------------------------------------------------------- tokenizer
_BRACED = r"\{(?:[^{}]|\{[^{}]*\})*\}"  # one level of nesting: h_{t−1}, Y_{k_{i+1}, i}
_SUB = rf"(?:_{_BRACED}|_\[[^\]\s]*\]|_<[A-Za-z]|_[A-Za-z0-9•{MATH_LETTER}]+)"
_SUP = rf"(?:\^{_BRACED}|\^\([^()\s]*\)|\^[A-Za-z0-9{MATH_LETTER}]+)"
_SCRIPTS = rf"(?:{_SUB}|{_SUP}|[ᵀ⁰¹²³⁴⁵⁶⁷⁸⁹⁻₀₁₂₃₄₅₆₇₈₉]|'(?![A-Za-z]))"
_ACCENTED = "[A-Za-zĤŶŷũ][\u0302\u0303]?"
_BASE = rf"(?:{_ACCENTED}|[{MATH_LETTER}][\u0302\u0303]?)"
_CODE = re.compile(
    r"`[^`]+`"  # `scores < topk(scores, k)[..., -1]`
    r"|(?<![\w.])(?:[A-Za-z_]\w*)(?:\.[A-Za-z_]\w*)+(?:\([^()\s]*\))?"  # torch.nn.LSTM, gpt2.lm_head
    r"|(?<![\w.])[A-Za-z][A-Za-z0-9]+_[A-Za-z0-9_]*\w(?:\([^()\s]*\))?"  # layer_norm_eps, top_k(z)
    r"|(?<![\w.])[A-Za-z]_[A-Za-z][a-z0-9]*_[A-Za-z0-9_]+"  # h_prev_x, a name with two underscores
    r"|(?<![\w.])\[[a-z_<>]+\](?:\[[a-z_<>]+\])+"  # [post_ln_][<activation>_]
)
_MATH = re.compile(
    r"√\([^()]*\)"  # √(σ² + ε)
    rf"|√{_BASE}{_SCRIPTS}*(?![\w{MATH_LETTER}])"  # √d_k
    rf"|(?<![\w'{MATH_LETTER}]){_BASE}{_SCRIPTS}+(?![A-Za-z0-9_])"  # h_{t−1}, Eᵀ, d_e², Λ_{:,1:n}
    rf"|(?<![\w'{MATH_LETTER}])[A-Za-z]{{2,}}(?:{_SUP}|[₀₁₂₃₄₅₆₇₈₉])+(?![\w])"  # Block^{(l)}, onehot₂
    rf"|(?<![\w'{MATH_LETTER}])[0-9]+(?:{_SUB}|{_SUP}|ᵀ|[⁰¹²³⁴⁵⁶⁷⁸⁹⁻])+(?![\w])"  # 1_nᵀ, 10⁻¹²
    rf"|(?<=[)\]‖])(?:{_SUB}|{_SUP}|[ᵀ⁰¹²³⁴⁵⁶⁷⁸⁹⁻])+"  # (0,1)^{d_h}, [softmax(Z)]_ij
    rf"|[{MATH_LETTER}][\u0302\u0303]?"  # κ, Λ, ℝ
    # a lone letter: z, k, Ŷ (not the articles a, A and I, nor initials: M. Saleh)
    rf"|(?<![A-Za-z0-9_'.-]){_ACCENTED}(?![A-Za-z0-9_']|\.\w|\. [A-Z][a-z])"
    rf"|[{''.join(OPERATORS)}]"
)


def pieces(text: str) -> list[tuple[str, object]]:
    """``[(kind, source), …]`` with kind ``text``, ``code`` (a string) or ``math`` (a list of parts:
    ``("atom", "h_{t−1}")`` or ``("op", " = ")``, the connectives between symbols of one formula)."""
    out: list[tuple[str, object]] = []
    pos = 0
    for code in _CODE.finditer(text):
        if re.fullmatch(r"[A-Za-z](?:\.[A-Za-z])+", code.group(0)):  # i.e, e.g: prose
            continue
        out.extend(_math_pieces(text[pos : code.start()]))
        out.append(("code", code.group(0).strip("`")))
        pos = code.end()
    out.extend(_math_pieces(text[pos:]))
    return out


#: Text that joins two symbols into one formula: operators, brackets, numbers and function names.
_CONNECTIVE = re.compile(r"(?:[ =+/()\[\]0-9|<>−-]|[.,](?! )|log|exp|tanh|softmax|argmax)*")
_LEAD = re.compile(r"(?<![\w.])[0-9]+(?:\.[0-9]+)?/?$")  # 1/v, 2i
_TAIL = re.compile(r"^ ?[=<>] ?−?[0-9]+(?:\.[0-9]+)?(?![\w.])|^/[0-9]+(?![\w.])")  # τ = 1, λ/2


def _math_pieces(text: str) -> list[tuple[str, object]]:
    raw: list[tuple[str, str]] = []
    pos = 0
    for m in _MATH.finditer(text):
        tok = m.group(0)
        if tok in ("a", "A", "I"):  # articles and the pronoun, not symbols
            continue
        if m.start() > pos:
            raw.append(("text", text[pos : m.start()]))
        raw.append(("atom", tok))
        pos = m.end()
    if pos < len(text):
        raw.append(("text", text[pos:]))
    # one formula from symbols joined by connectives: "X = E Ω" is one math run, not three
    out: list[tuple[str, object]] = []
    for i, (kind, src) in enumerate(raw):
        if kind == "atom":
            if out and out[-1][0] == "math":
                out[-1][1].append(("atom", src))
            else:
                out.append(("math", [("atom", src)]))
            continue
        before = out[-1][0] == "math" if out else False
        after = i + 1 < len(raw) and raw[i + 1][0] == "atom"
        if before and after and _CONNECTIVE.fullmatch(src):
            out[-1][1].append(("op", src))
            continue
        if before:
            tail = _TAIL.match(src)
            if tail:
                out[-1][1].append(("op", tail.group(0)))
                src = src[tail.end() :]
        lead = _LEAD.search(src) if after else None
        if lead:
            src, lead_text = src[: lead.start()], lead.group(0)
        if src:
            out.append(("text", src))
        if lead:
            out.append(("math", [("op", lead_text)]))
    return out


# ----------------------------------------------------------------------------------------- LaTeX
def math_latex(src: str) -> str:
    """The LaTeX of one math run of the notes: ``h_{t−1}`` → ``h_{t-1}``, ``Eᵀ`` → ``E^{\\top}``."""
    if src.startswith("√("):
        return rf"\sqrt{{{inner_latex(src[2:-1])}}}"
    if src.startswith("√") and len(src) > 1:
        return rf"\sqrt{{{math_latex(src[1:])}}}"
    if src and src[0] in "ΣΠ" and src[1:2] == "_":  # Σ_i, Π_i: the sum and the product
        return (r"\sum" if src[0] == "Σ" else r"\prod") + _scripts_latex(src[1:])
    m = re.match(r"[A-Za-z]{2,}(?=[\^₀₁₂₃₄₅₆₇₈₉])", src)
    if m:  # Block^{(l)}, onehot₂
        return rf"\operatorname{{{m.group(0)}}}" + _scripts_latex(src[m.end() :])
    m = re.match(r"[0-9]+", src)
    if m:
        return m.group(0) + _scripts_latex(src[m.end() :])
    if src and (src[0] in "_^" or src[0] in SUPERSCRIPTS):  # the scripts of a bracket: (0,1)^{d_h}
        return "{}" + _scripts_latex(src)
    if src in OPERATORS:
        return OPERATORS[src]
    base, rest = _base(src)
    return base + _scripts_latex(rest)


def _base(src: str) -> tuple[str, str]:
    """The first symbol with its accent, as LaTeX, and the rest."""
    precomposed = {"Ĥ": ("H", r"\hat"), "Ŷ": ("Y", r"\hat"), "ŷ": ("y", r"\hat"), "ũ": ("u", r"\tilde")}
    ch, rest = src[0], src[1:]
    if ch in precomposed:
        letter, accent = precomposed[ch]
        return rf"{accent}{{{letter}}}", rest
    tex = LETTERS.get(ch, ch)
    if rest[:1] in ACCENTS:
        tex, rest = rf"{ACCENTS[rest[0]]}{{{tex}}}", rest[1:]
    return tex, rest


def _scripts_latex(src: str) -> str:
    """``_t^{(m)}ᵀ²`` → ``_{t}^{(m)}{}^{\\top}…``: each sub- or superscript braced."""
    out: list[str] = []
    i = 0
    while i < len(src):
        ch = src[i]
        if ch in "_^":
            body, i = _script_body(src, i + 1)
            if ch == "_" and body.startswith("<"):
                body = "<" + body[1:]
            out.append(f"{ch}{{{inner_latex(body)}}}")
        elif ch in SUPERSCRIPTS:
            j = i
            while j < len(src) and src[j] in SUPERSCRIPTS:
                j += 1
            out.append("^{" + " ".join(SUPERSCRIPTS[c] for c in src[i:j]).replace("- ", "-") + "}")
            i = j
        elif ch in SUBSCRIPTS:
            j = i
            while j < len(src) and src[j] in SUBSCRIPTS:
                j += 1
            out.append("_{" + "".join(SUBSCRIPTS[c] for c in src[i:j]) + "}")
            i = j
        elif ch == "'":
            out.append("'")
            i += 1
        else:
            out.append(inner_latex(ch))
            i += 1
    # two superscripts in a row (Eᵀ after ^{…}) need an empty group between them
    text = "".join(out)
    return re.sub(r"(\^\{(?:[^{}]|\{[^{}]*\})*\})(?=\^)", r"\1{}", text)


def _script_body(src: str, i: int) -> tuple[str, int]:
    """The body of a sub- or superscript starting at ``src[i]`` and the index after it."""
    if src[i] in "{[(":
        close = {"{": "}", "[": "]", "(": ")"}[src[i]]
        depth, j = 0, i
        while j < len(src):
            if src[j] == src[i]:
                depth += 1
            elif src[j] == close:
                depth -= 1
                if depth == 0:
                    break
            j += 1
        body = src[i + 1 : j] if src[i] == "{" else src[i : j + 1]
        return body, j + 1
    if src[i] == "<":
        return src[i : i + 2], i + 2
    j = i
    while j < len(src) and (src[j].isalnum() or src[j] in "•" + MATH_LETTER) and src[j] not in _MODIFIERS:
        j += 1
    return src[i:j], j


_AXES = "|".join(sorted((re.escape(k) for k in GLOSSARY if "_" in k), key=len, reverse=True))


def inner_latex(src: str) -> str:
    """Math inside a sub- or superscript (or a whole math run's body): words upright, Unicode mapped."""
    if src in GLOSSARY:
        return GLOSSARY[src].latex
    out: list[str] = []
    tokens = re.findall(rf"{_AXES}|[A-Za-z][A-Za-z0-9]+|\[[A-Z]+\]|\s+|[^\s]", src)
    for k, tok in enumerate(tokens):
        if tok in GLOSSARY:
            out.append(GLOSSARY[tok].latex)
        elif tok.isspace():  # a visible space only next to a word: i predicted, not σ² + ε
            words = [t for t in tokens[max(k - 1, 0) : k + 2 : 2] if len(t) > 1 and t[0].isalpha()]
            out.append(r"\ " if words else " ")
        elif tok.startswith("[") and tok.endswith("]"):
            out.append(rf"\mathrm{{{tok}}}")
        elif len(tok) > 1:
            out.append(rf"\{tok} " if tok in FUNCTIONS else rf"\mathrm{{{tok}}}")
        elif tok in LETTERS or tok in OPERATORS:
            tex = LETTERS.get(tok) or OPERATORS[tok]
            out.append(tex + " " if tex.startswith("\\") else tex)
        elif tok in SUPERSCRIPTS:
            out.append(f"^{{{SUPERSCRIPTS[tok]}}}")
        elif tok in SUBSCRIPTS:
            out.append(f"_{{{SUBSCRIPTS[tok]}}}")
        elif tok in ACCENTS and out:
            out[-1] = rf"{ACCENTS[tok]}{{{out[-1].strip()}}}"
        elif tok in "#$%&":
            out.append("\\" + tok)
        elif tok in "~\\":
            out.append(r"\sim " if tok == "~" else r"\backslash ")
        elif ord(tok) > 127:
            out.append(_unknown(tok))
        else:
            out.append(tok)
    return "".join(out).strip()


def _unknown(ch: str) -> str:
    UNKNOWN.add(ch)
    return "?"


def text_latex(src: str) -> str:
    """Prose, escaped for LaTeX text mode (OT1 fonts: < > | are not their glyphs there)."""
    out: list[str] = []
    for i, ch in enumerate(src):
        if ch == "'" and (i == 0 or src[i - 1] in " (\n"):
            out.append("`")  # an opening quote
        elif ch in TEXT:
            out.append(TEXT[ch])
        elif ord(ch) < 128:
            out.append(ch)
        elif ch in LETTERS or ch in OPERATORS:
            out.append(rf"\ensuremath{{{LETTERS.get(ch) or OPERATORS[ch]}}}")
        elif ch in SUPERSCRIPTS or ch in SUBSCRIPTS:
            script = "^" if ch in SUPERSCRIPTS else "_"
            out.append(rf"\ensuremath{{{script}{{{SUPERSCRIPTS.get(ch) or SUBSCRIPTS[ch]}}}}}")
        else:
            plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(plain if plain else _unknown(ch))
    return "".join(out)


#: An underscore in typewriter: cmtt's own glyph (character 95), which a PDF viewer copies as "_". LaTeX's
#: ``\_`` (and ``\textunderscore``) in the OT1 encoding is a drawn rule, which copies as a space or not at
#: all: ``attention.scaled dot product``. ``\relax`` ends the number before a digit (``W\char95\relax 1``).
TT_UNDERSCORE = r"\char95\relax{}"


def id_latex(src: str) -> str:
    r"""An equation id or other code for ``\texttt``: escaped, each underscore cmtt's glyph (TT_UNDERSCORE),
    so that ``attention.scaled_dot_product`` copied from the PDF keeps its underscores."""
    return text_latex(src).replace(r"\_", TT_UNDERSCORE)


def code_latex(src: str) -> str:
    """Code in typewriter, breakable after its dots and underscores (each underscore copies as ``_``)."""
    body = id_latex(src).replace("-", "-{}").replace(TT_UNDERSCORE, TT_UNDERSCORE + r"\allowbreak{}")
    return r"\texttt{" + re.sub(r"\.(?=\w)", r".\\allowbreak{}", body) + "}"


def latex(text: str) -> str:
    """A note, title or meaning as LaTeX: prose escaped, the notation as math, code in typewriter."""
    out: list[str] = []
    for kind, src in pieces(text):
        if kind == "text":
            out.append(text_latex(src))
        elif kind == "code":
            out.append(code_latex(src))
        else:
            out.append(f"${formula_latex(src)}$")
    return "".join(out)


def formula_latex(parts: list[tuple[str, str]]) -> str:
    """The LaTeX of a math run: its symbols and the connectives between them."""
    out = ""
    for kind, src in parts:
        if kind == "atom":
            tex = math_latex(src)
        else:
            tex = re.sub(r"\b(log|exp|tanh)\b", r"\\\1 ", src)
            tex = re.sub(r"\b(softmax|argmax)\b", r"\\operatorname{\1}", tex)
            tex = tex.replace("−", "-").replace("|", r"\mid ")
        if re.search(r"\\[A-Za-z]+$", out) and tex[:1].isalpha():
            out += " "  # \eta g, not \etag
        out += tex
    return re.sub(r"\s+", " ", out).strip()


def plain(text: str) -> str:
    """ASCII for PDF bookmarks: Greek letters by name, the rest of the notation dropped."""
    out = []
    for ch in text:
        if ch in GREEK:
            out.append(GREEK[ch][1:])
        elif ord(ch) < 128 and ch not in "\\{}_^~#$%&<>|":
            out.append(ch)
        elif ch in "_":
            out.append(" ")
        else:
            out.append(unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode())
    return re.sub(r"\s+", " ", "".join(out)).strip()


# ------------------------------------------------------------------------------------------ HTML
def math_html(src: str) -> str:
    """A math run as HTML: letters in italics, sub- and superscripts as ``<sub>``/``<sup>``."""
    out: list[str] = []
    i = 0
    while i < len(src):
        ch = src[i]
        if ch in "_^":
            body, i = _script_body(src, i + 1)
            tag = "sub" if ch == "_" else "sup"
            out.append(f"<{tag}>{math_html(body) if body != src else html.escape(body)}</{tag}>")
            continue
        if ch in SUPERSCRIPTS or ch in SUBSCRIPTS:
            out.append(ch)
        elif ch.isascii() and ch.isalpha():
            j = i
            while j < len(src) and src[j].isascii() and src[j].isalpha():
                j += 1
            word = src[i:j]
            out.append(f"<i>{word}</i>" if len(word) == 1 else html.escape(word))
            i = j
            continue
        elif ch in LETTERS and ch not in "ℝℕ" and ch.islower():
            out.append(f"<i>{ch}</i>")
        else:
            out.append(html.escape(ch))
        i += 1
    return "".join(out)


def to_html(text: str) -> str:
    """A note, title or meaning as HTML (escaped)."""
    out: list[str] = []
    for kind, src in pieces(text):
        if kind == "text":
            out.append(html.escape(src))
        elif kind == "code":
            out.append(f"<code>{html.escape(src)}</code>")
        else:
            body = "".join(math_html(x) if k == "atom" else html.escape(x) for k, x in src)
            out.append(f'<span class="m">{body.strip()}</span>')
    return "".join(out)


# -------------------------------------------------------------------------------------- Markdown
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#+!|$~])")


def md_text(src: str) -> str:
    """Prose escaped for GitHub Markdown (no emphasis, links, HTML or math by accident)."""
    return _MD_SPECIAL.sub(r"\\\1", src)


def md_code(src: str) -> str:
    fence = "``" if "`" in src else "`"
    pad = " " if "`" in src else ""
    return f"{fence}{pad}{src}{pad}{fence}"


def md_math(tex: str) -> str:
    """Inline math in GitHub's robust form ``$`…`$`` (nothing inside is read as Markdown)."""
    return f"$`{tex}`$"


def to_md(text: str) -> str:
    """A note, title or meaning as GitHub Markdown: the notation as inline math."""
    out: list[str] = []
    for kind, src in pieces(text):
        if kind == "text":
            out.append(md_text(src))
        elif kind == "code":
            out.append(md_code(src))
        else:
            out.append(md_math(formula_latex(src)))
    return "".join(out)


def md_heading_text(text: str) -> str:
    """A heading's text for Markdown: the notation kept as Unicode, escaped (anchors stay predictable)."""
    return md_text(text)
