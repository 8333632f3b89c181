"""Fuzzing model files: random mutations of a valid file's header and description.

Every mutated file either loads or is refused with :class:`ModelFormatError`;
nothing else may escape ``anomvae.load`` (no ``RecursionError``,
``RuntimeError`` from the allocator, ``AttributeError``...). Description
mutations get a recomputed description digest, as a deliberate forger would
do, so that they reach the code that interprets the description instead of
stopping at the checksum.

Bounds held (the fuzzed file is about 20 KB):

- allocation: the process's peak resident memory grows by less than
  :data:`PEAK_GROWTH_LIMIT_MB` over the whole run, and a loaded model's
  weights are exactly the file's tensors (before the meta-device check, a
  24 KB file could make ``load`` allocate 7.4 GB);
- time: each load takes less than :data:`LOAD_SECONDS_LIMIT`;
- no code runs: values that would run code if evaluated, imported or
  unpickled are planted in the description, and the marker file they would
  create never appears.
"""

import json
import resource
import struct
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import anomvae
from anomvae import AnomalyVAE
from anomvae.persistence import DESCRIPTION_DIGEST_KEY, ModelFormatError, description_digest

PEAK_GROWTH_LIMIT_MB = 256
LOAD_SECONDS_LIMIT = 5.0
MARKER = Path("/tmp/anomvae-fuzz-code-ran")
CODE_STRINGS = [
    f"__import__('os').system('touch {MARKER}')",
    "os.system",
    "builtins.eval",
    f"cos\nsystem\n(S'touch {MARKER}'\ntR.",  # a protocol-0 pickle
]


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rng = np.random.default_rng(0)
        detector = AnomalyVAE(epochs=2, random_state=0, hidden_dims=[16, 8], latent_dim=2).fit(rng.normal(size=(64, 5)))
    path = tmp_path_factory.mktemp("fuzz") / "model.safetensors"
    detector.save(path)
    with safe_open(str(path), framework="pt") as handle:
        document = json.loads(handle.metadata()["anomvae"])
    return path.read_bytes(), document, load_file(str(path))


json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.sampled_from([0, -1, 1, 2**31, 2**63, 30000]),
        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10), st.sampled_from(CODE_STRINGS),
    ),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=5), children, max_size=4)),
    max_leaves=12,
)


def paths(document, prefix=()):
    """Every (path, value) in a JSON document, the root excepted."""
    items = document.items() if isinstance(document, dict) else enumerate(document) if isinstance(document, list) else []
    for key, value in items:
        yield (*prefix, key), value
        yield from paths(value, (*prefix, key))


def replaced(document, path, value):
    copy = json.loads(json.dumps(document))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def check_load(path: Path, n_weights: int) -> None:
    started = time.perf_counter()
    try:
        detector = anomvae.load(path, device="cpu")
    except ModelFormatError:
        pass
    else:
        assert sum(p.numel() for p in detector.scorer_.state_dict().values()) == n_weights
    assert time.perf_counter() - started < LOAD_SECONDS_LIMIT
    assert not MARKER.exists()


@pytest.fixture(scope="module")
def peak_memory():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert growth_mb < PEAK_GROWTH_LIMIT_MB, f"peak RSS grew by {growth_mb:.0f} MB while fuzzing"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_description_mutations_load_or_raise_model_format_error(original, peak_memory, tmp_path_factory, data):
    _, document, tensors = original
    targets = list(paths(document))
    path_, _ = data.draw(st.sampled_from(targets), label="path")
    mutated = replaced(document, path_, data.draw(json_values, label="value"))
    if data.draw(st.booleans(), label="forge digest"):
        mutated[DESCRIPTION_DIGEST_KEY] = description_digest(mutated)
    target = tmp_path_factory.mktemp("mutant") / "model.safetensors"
    save_file(tensors, str(target), metadata={"anomvae": json.dumps(mutated)})
    check_load(target, sum(t.numel() for t in tensors.values()))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_header_byte_mutations_load_or_raise_model_format_error(original, peak_memory, tmp_path_factory, data):
    raw, _, tensors = original
    header_length = struct.unpack("<Q", raw[:8])[0]
    buffer = bytearray(raw)
    kind = data.draw(st.sampled_from(["flip", "length", "truncate"]), label="kind")
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            position = data.draw(st.integers(0, 8 + header_length - 1), label="position")
            buffer[position] = data.draw(st.integers(0, 255), label="byte")
    elif kind == "length":
        buffer[:8] = struct.pack("<Q", data.draw(st.integers(0, 2**64 - 1), label="length"))
    else:
        del buffer[data.draw(st.integers(0, len(buffer) - 1), label="cut"):]
    target = tmp_path_factory.mktemp("mutant") / "model.safetensors"
    target.write_bytes(bytes(buffer))
    check_load(target, sum(t.numel() for t in tensors.values()))


@pytest.mark.parametrize("description", [
    "[" * 100_000 + "]" * 100_000,
    '{"format_version": 3}',
    "not json",
    "[]",
    '"a string"',
    "1e999",
])
def test_raw_descriptions_raise_model_format_error(original, tmp_path, description):
    _, _, tensors = original
    target = tmp_path / "model.safetensors"
    save_file(tensors, str(target), metadata={"anomvae": description})
    with pytest.raises(ModelFormatError):
        anomvae.load(target)


def test_huge_hidden_dims_are_refused_before_allocating(original, tmp_path):
    _, document, tensors = original
    forged = replaced(document, ("params", "hidden_dims"), [30000, 30000])
    forged[DESCRIPTION_DIGEST_KEY] = description_digest(forged)
    target = tmp_path / "model.safetensors"
    save_file(tensors, str(target), metadata={"anomvae": json.dumps(forged)})
    started = time.perf_counter()
    with pytest.raises(ModelFormatError, match="weights do not fit the model described"):
        anomvae.load(target)
    assert time.perf_counter() - started < 1.0
