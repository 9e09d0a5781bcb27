"""The disk cache of compiled oracles and generated code (verify/cache.py): a second compile does no SymPy
expansion; a changed equation never gets an old entry; a corrupt entry heals; writers racing leave a whole
entry; --no-cache bypasses it."""

import hashlib
import multiprocessing
import os

import numpy as np
import pytest
import sympy as sp

from lmspec import spec
from lmspec.spec import Equation, Reference, tensor
from lmspec.spec.axes import n
from lmspec.spec.ops import Softmax
from lmspec.verify import cache, codegen, oracle
from lmspec.verify.oracle import Oracle

SIZES = {"n": 3}


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty cache folder and empty in-process caches, so that each compile below is a first one."""
    monkeypatch.setenv("LMSPEC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("LMSPEC_NO_CACHE", raising=False)
    oracle._compile.cache_clear()
    codegen.compiled.cache_clear()
    yield tmp_path / cache.FORMAT
    oracle._compile.cache_clear()
    codegen.compiled.cache_clear()


def _softmax_eq(scale: float) -> Equation:
    """A small equation built in the test: Y = softmax(scale · Z)."""
    Z = tensor("Z", (n, n))
    Y = tensor("Y", (n, n))
    return Equation(
        "test.softmax",
        "scaled softmax",
        inputs=(Z,),
        intermediates=(Y,),
        outputs=(Y,),
        bindings=((Y, Softmax(sp.Float(scale) * Z)),),
        reference=Reference("t"),
    )


def _no_expansion(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("SymPy expansion ran")

    monkeypatch.setattr(oracle, "expand", refuse)
    monkeypatch.setattr(codegen, "generate", refuse)


def test_a_second_process_compiles_from_disk_without_expanding(fresh, monkeypatch):
    eq = spec.get("attention.scaled_dot_product")
    sizes = {"n": 2, "d_k": 3, "d_v": 2}
    first = Oracle(eq).compiled(sizes)
    assert not first.cached and len(list(fresh.glob("*.py"))) == 1
    oracle._compile.cache_clear()  # as a new process would start
    _no_expansion(monkeypatch)
    again = Oracle(eq).compiled(sizes)
    assert again.cached
    rng = np.random.default_rng(0)
    example = {"Q": rng.normal(size=(2, 3)), "K": rng.normal(size=(2, 3)), "V": rng.normal(size=(2, 2))}
    example["S"] = np.zeros((2, 2))
    assert np.array_equal(first.fn(*[example[k].tolist() for k in "QKVS"])[0],
                          again.fn(*[example[k].tolist() for k in "QKVS"])[0])  # fmt: skip


def test_generated_code_is_cached_too(fresh, monkeypatch):
    eq = spec.get("attention.softmax_rows")
    fn = codegen.compiled(eq)
    codegen.compiled.cache_clear()
    _no_expansion(monkeypatch)
    assert codegen.compiled(eq).__name__ == fn.__name__


def test_a_changed_equation_never_gets_the_old_entry(fresh):
    one, two = _softmax_eq(1.0), _softmax_eq(2.0)
    assert cache.fingerprint(one) == cache.fingerprint(_softmax_eq(1.0))  # content, not identity
    assert cache.fingerprint(one) != cache.fingerprint(two)
    Z = np.arange(9.0).reshape(3, 3) / 10
    y1 = Oracle(one)({"Z": Z}, SIZES)["Y"]
    y2 = Oracle(two)({"Z": Z}, SIZES)["Y"]  # the same id, the same sizes, another definition
    assert not np.allclose(y1, y2)
    assert len(list(fresh.glob("*.py"))) == 2


def test_a_changed_callee_changes_its_callers(monkeypatch):
    """transformer.block_pre_ln calls attention.multi_head: change the callee, and the block's key moves."""
    block = spec.get("transformer.block_pre_ln")
    before = cache.fingerprint(block)
    mha = spec.get("attention.multi_head")
    monkeypatch.setattr(mha, "bindings", mha.bindings[:-1])
    assert cache.fingerprint(block) != before


def test_the_code_that_compiles_is_part_of_the_key(tmp_path):
    (tmp_path / "ops.py").write_text("A = 1\n")
    before = cache.code_hash((tmp_path,))
    (tmp_path / "ops.py").write_text("A = 2\n")
    cache.code_hash.cache_clear()
    assert cache.code_hash((tmp_path,)) != before


def test_a_corrupt_entry_is_deleted_and_recomputed(fresh):
    eq = _softmax_eq(1.0)
    Z = np.eye(3)
    want = Oracle(eq)({"Z": Z}, SIZES)["Y"]
    (entry,) = fresh.glob("*.py")
    entry.write_text(entry.read_text()[:-40])  # truncated, as by a crash mid-write
    oracle._compile.cache_clear()
    again = Oracle(eq).compiled(SIZES)
    assert not again.cached  # the bad entry was refused, then written anew
    assert np.array_equal(Oracle(eq)({"Z": Z}, SIZES)["Y"], want)
    assert cache.load(entry.stem) is not None


def _write_many(folder: str, text: str) -> None:
    os.environ["LMSPEC_CACHE_DIR"] = folder
    for _ in range(200):
        cache.store("race", text)


def test_two_processes_writing_one_entry_leave_a_whole_one(tmp_path, monkeypatch):
    monkeypatch.setenv("LMSPEC_CACHE_DIR", str(tmp_path))
    texts = ["def oracle():\n    return (1,)\n" * 50, "def oracle():\n    return (2,)\n" * 50]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(str(tmp_path), t)) for t in texts]
    for p in procs:
        p.start()
    for _ in range(200):
        got = cache.load("race")
        assert got is None or got in texts  # never a mixture, never a torn file
    for p in procs:
        p.join()
    assert cache.load("race") in texts
    assert not list((tmp_path / cache.FORMAT).glob("*.tmp"))


def test_no_cache_neither_reads_nor_writes(fresh, monkeypatch):
    monkeypatch.setenv("LMSPEC_NO_CACHE", "1")
    Oracle(_softmax_eq(1.0)).compiled(SIZES)
    assert not fresh.exists()
    cache.store("x", "y = 1\n")
    assert cache.load("x") is None


def test_disabled_bypasses_inside_and_restores_after(fresh, monkeypatch):
    """What lmspec bench uses to time cold runs: the variable is restored, whatever it was."""
    with cache.disabled():
        assert not cache.enabled()
        Oracle(_softmax_eq(1.0)).compiled(SIZES)
    assert cache.enabled() and not fresh.exists()
    monkeypatch.setenv("LMSPEC_NO_CACHE", "0")
    with cache.disabled():
        pass
    assert os.environ["LMSPEC_NO_CACHE"] == "0"


def test_verify_no_cache_writes_nothing(fresh, capsys):
    from lmspec.verify.cli import main

    assert main(["verify", "lm.softmax", "-p", "quick", "--no-cache"]) == 0
    assert not fresh.exists()
    os.environ.pop("LMSPEC_NO_CACHE", None)  # set by the command for its workers; not for the next test
    oracle._compile.cache_clear()  # as a new process would start
    codegen.compiled.cache_clear()
    assert main(["verify", "lm.softmax", "-p", "quick"]) == 0
    assert list(fresh.glob("*.py"))  # the same run with the cache fills it


def test_bytecode_is_kept_and_a_second_compile_loads_it(fresh, monkeypatch):
    """A warm oracle is not compiled again: its bytecode comes from the cache, keyed by its source."""
    eq = _softmax_eq(1.0)
    want = Oracle(eq)({"Z": np.eye(3)}, SIZES)["Y"]
    (pyc,) = fresh.glob("*.pyc")
    oracle._compile.cache_clear()  # as a new process would start

    def refuse(*args, **kwargs):
        raise AssertionError("compiled again")

    with monkeypatch.context() as mp:
        mp.setattr("builtins.compile", refuse)
        assert np.array_equal(Oracle(eq)({"Z": np.eye(3)}, SIZES)["Y"], want)
    code = cache.compile_source("x = 1\n", "<test>")
    assert cache.compile_source("x = 2\n", "<test>") is not code  # another source, another entry
    assert len(list(fresh.glob("*.pyc"))) == 3 and pyc.exists()


def test_a_corrupt_bytecode_file_is_deleted_and_compiled_anew(fresh):
    cache.compile_source("x = 1\n", "<test>")
    (pyc,) = fresh.glob("*.pyc")
    pyc.write_bytes(pyc.read_bytes()[:-3])  # truncated
    namespace: dict = {}
    exec(cache.compile_source("x = 1\n", "<test>"), namespace)
    assert namespace["x"] == 1
    data = pyc.read_bytes()  # written anew, whole
    assert data[:32] == hashlib.sha256(data[32:]).digest()


def test_no_cache_compiles_without_writing_bytecode(fresh, monkeypatch):
    monkeypatch.setenv("LMSPEC_NO_CACHE", "1")
    namespace: dict = {}
    exec(cache.compile_source("x = 3\n", "<test>"), namespace)
    assert namespace["x"] == 3 and not fresh.exists()
