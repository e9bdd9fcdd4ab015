"""Every parser of outside input, fed anything: a result or one clear error of ff's
own kinds, never another exception (a traceback for the user), and never a change on
disk. Hypothesis generates the inputs: random bytes, and valid documents with one
part changed, which reach deeper than random bytes do."""

from __future__ import annotations

import contextlib
import json
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ffstore.canonical import canonical_bytes
from ffstore.errors import FFError
from ffstore.index import parse_index
from ffstore.lockfile import parse_lock
from ffstore.manifest import parse_manifest, parse_signatures
from ffstore.onnxinfo import read_io
from ffstore.project import parse_project
from ffstore.settings import resolve
from ffstore.trust import check_index
from ffswap.weights import last_initializer, split_weights
from tests.conftest import YUNET, ff_runner

EXPECTED = (FFError, ValueError)
"""What a parser may raise: ff's one-line errors, and ValueError where the API says
so (the ONNX reader). The CLI turns either into `error: ...`."""

PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10),
                                                                     children, max_size=4),
    max_leaves=20)


def _mutated(document: dict, path: list[str], value: object) -> dict:
    """`document` with the value at `path` (keys, as deep as they go) replaced."""
    copy = json.loads(json.dumps(document))
    node = copy
    for key in path[:-1]:
        if not isinstance(node, dict) or key not in node:
            return copy
        node = node[key]
    if isinstance(node, dict):
        node[path[-1]] = value
    return copy


def _parses_or_refuses(parse: Callable[[bytes], object], data: bytes) -> None:
    with contextlib.suppress(*EXPECTED):
        parse(data)


MANIFEST = {"type": "ff-manifest", "spec": 1, "model": "m", "version": "1.0.0",
            "module": "face_detector", "requires": {"ff": ">=0.1"},
            "files": [{"path": "m.onnx", "digest": "sha256:" + "0" * 64, "size": 3,
                       "onnx": {"inputs": [{"name": "input", "shape": [1], "dtype": "float32"}],
                                "outputs": []}}]}
INDEX = {"signed": {"type": "ff-index", "spec": 2, "registry": "0" * 32, "version": 3,
                    "expires": "2030-01-01T00:00:00Z",
                    "models": {"m": {"1.0.0": {"manifest": "sha256:" + "0" * 64,
                                               "module": "face_detector"}}},
                    "rotations": [{"old": "ed25519:" + "A" * 43, "new": "ed25519:" + "B" * 43,
                                   "sig": "x"}]},
         "signatures": [{"keyid": "ed25519:" + "A" * 43, "sig": "y"}]}
LOCK = ('lock-version = 2\ninputs = "sha256:' + "0" * 64 + '"\n[modules."face_masker/m"]\n'
        'model = "m"\nversion = "1.0.0"\nregistry = "default"\nmanifest = "sha256:' + "0" * 64
        + '"\nsigners = ["ed25519:' + "A" * 43 + '"]\n[[modules."face_masker/m".files]]\n'
        'path = "m.onnx"\ndigest = "sha256:' + "0" * 64 + '"\nsize = 3\n')
TOML = ('[registries]\ndefault = "r"\nteam = { url = "https://x.example/ff", mirrors = [] }\n'
        '[trust]\nkeys = ["ed25519:' + "A" * 43 + '"]\n[modules]\n'
        'face_detector = { model = "m", version = ">=1" }\n'
        'face_masker = [{ model = "a" }, { model = "b", registry = "team" }]\n'
        '[settings]\njobs = 2\n')


@PROPERTY
@given(st.binary(max_size=300))
def test_any_bytes_as_a_manifest_signatures_index_or_lock(data: bytes) -> None:
    for parse in (parse_manifest, lambda d: parse_signatures(d, "sig"),
                  lambda d: parse_index(d, "index"), lambda d: parse_lock(d, "lock")):
        _parses_or_refuses(parse, data)


@PROPERTY
@given(st.lists(st.sampled_from(["type", "spec", "model", "version", "module", "requires", "ff",
                                 "files", "path", "digest", "size", "onnx", "inputs"]),
                min_size=1, max_size=3), json_values)
def test_a_manifest_with_any_part_changed(path: list[str], value: object) -> None:
    document = _mutated(MANIFEST, path, value)
    try:
        data = canonical_bytes(document)
    except ValueError:
        data = json.dumps(document).encode()
    _parses_or_refuses(parse_manifest, data)


@PROPERTY
@given(st.lists(st.sampled_from(["signed", "signatures", "type", "spec", "registry", "version",
                                 "expires", "models", "m", "1.0.0", "manifest", "module",
                                 "rotations"]), min_size=1, max_size=4), json_values)
def test_an_index_and_its_key_rotations_with_any_part_changed(path: list[str],
                                                              value: object) -> None:
    document = _mutated(INDEX, path, value)
    try:
        data = canonical_bytes(document)
    except ValueError:
        data = json.dumps(document).encode()
    with contextlib.suppress(*EXPECTED):
        check_index(parse_index(data, "index"), frozenset({"ed25519:" + "A" * 43}), "index")


@PROPERTY
@given(st.integers(0, len(LOCK)), st.text(max_size=12))
def test_a_lock_with_any_text_spliced_in(at: int, text: str) -> None:
    _parses_or_refuses(lambda d: parse_lock(d, "lock"), (LOCK[:at] + text + LOCK[at:]).encode())


@PROPERTY
@given(st.integers(0, len(TOML)), st.text(max_size=12))
def test_a_toml_with_any_text_spliced_in(at: int, text: str) -> None:
    try:
        document = tomllib.loads(TOML[:at] + text + TOML[at:])
    except tomllib.TOMLDecodeError:
        return  # the loader's own refusal: load_project words it as one line
    def parse(_data: bytes) -> None:
        project = parse_project(Path("/p"), document, "toml")
        resolve({}, {}, project.settings)

    _parses_or_refuses(parse, b"")


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at=st.integers(0, len(TOML)), text=st.text(max_size=12))
def test_ff_lock_on_any_toml_says_one_line_and_changes_nothing(tmp_path_factory: pytest.TempPathFactory,
                                                              at: int, text: str) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    run = ff_runner(root / "home", root)
    (root / "facefusion.toml").write_text(TOML[:at] + text + TOML[at:])
    (root / "facefusion.lock").write_text(LOCK)
    for command in (["lock"], ["sync", "--locked"], ["status"]):
        result = run(*command, expect=None)
        assert result.code in (0, 1, 2), result
        if result.code:
            lines = [line for line in result.err.splitlines() if not line.startswith("note:")]
            assert len(lines) == 1 and lines[0].startswith("error: "), result.err
        assert (root / "facefusion.lock").read_text() == LOCK


@pytest.fixture(scope="module")
def yunet_bytes() -> bytes:
    return YUNET.read_bytes()


@PROPERTY
@given(data=st.data())
def test_the_onnx_reader_on_cut_and_flipped_models(tmp_path: Path, yunet_bytes: bytes,
                                                   data: st.DataObject) -> None:
    end = data.draw(st.integers(1, len(yunet_bytes)))
    flips = data.draw(st.lists(st.integers(0, end - 1), max_size=4))
    model = bytearray(yunet_bytes[:end])
    for at in flips:
        model[at] ^= 0xFF
    path = tmp_path / "model.onnx"
    path.write_bytes(bytes(model))
    for parse in (lambda _d: read_io(path), last_initializer,
                  lambda d: split_weights(d, "weights")):
        _parses_or_refuses(parse, bytes(model))
