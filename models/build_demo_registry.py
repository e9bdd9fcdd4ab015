"""Rebuild the demo registry that ships with the repo (models/registry).

It holds the real detectors from tests/data/models and generated stand-ins for the
recogniser, swapper and enhancer (see tests/standins.py), signed with the demo key in
models/keys/demo.key. That key is public on purpose: it only proves the demo works
offline. Never trust it for real models.

Run from the repo root: `python models/build_demo_registry.py` (needs `onnx`, from the
test extra), then `ff lock` to refresh facefusion.lock.
"""

import shutil
import sys
import tempfile
from pathlib import Path

from ffstore.publish import publish
from ffstore.signing import generate_key, load_key

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
# Run as a script, Python puts models/ on the path, not the repo: the stand-ins are
# test tooling (tests/standins.py), outside the installed packages.
sys.path.insert(0, str(REPO))
from tests import standins  # noqa: E402  (needs the path above)

REGISTRY = ROOT / "registry"
KEYS = ROOT / "keys"
DETECTORS = REPO / "tests" / "data" / "models"
EXPIRY_DAYS = 3650  # a demo must keep working from a fresh clone for years

# (model, version, module, file name, how to get the bytes)
RELEASES = [
    ("yunet", "2026.5.0", "face_detector", "face_detection_yunet_2026may.onnx",
     lambda: (DETECTORS / "yunet" / "face_detection_yunet_2026may.onnx").read_bytes()),
    ("ulfd", "1.0.0", "face_detector", "version-slim-320.onnx",
     lambda: (DETECTORS / "ulfd" / "version-slim-320.onnx").read_bytes()),
    ("ulfd", "1.1.0", "face_detector", "version-RFB-320.onnx",
     lambda: (DETECTORS / "ulfd" / "version-RFB-320.onnx").read_bytes()),
    ("ulfd", "2.0.0", "face_detector", "version-RFB-640.onnx",
     lambda: (DETECTORS / "ulfd" / "version-RFB-640.onnx").read_bytes()),
    ("standin_arcface_w600k_r50", "1.0.0", "face_recognizer", "arcface_w600k_r50.onnx",
     lambda: standins.face_recognizer(0)),
    ("standin_inswapper_128", "1.0.0", "face_swapper", "inswapper_128.onnx",
     lambda: standins.face_swapper(0, 0.6)),
    # 1.1.0 is the "regressed" release: another tint, stronger. Roll it back in the demo.
    ("standin_inswapper_128", "1.1.0", "face_swapper", "inswapper_128.onnx",
     lambda: standins.face_swapper(1, 0.8)),
    ("standin_gfpgan_1.4", "1.4.0", "face_enhancer", "gfpgan_1.4.onnx",
     lambda: standins.face_enhancer(0, 1.5)),
]


def main() -> None:
    key_file = KEYS / "demo.key"
    key = load_key(KEYS, str(key_file)) if key_file.exists() else generate_key(KEYS, "demo")
    with tempfile.TemporaryDirectory() as scratch:
        for model, version, module, name, make in RELEASES:
            folder = Path(scratch) / model / version
            folder.mkdir(parents=True)
            (folder / name).write_bytes(make())
            result = publish(REGISTRY, [folder / name], model, version, module, key,
                             expiry_days=EXPIRY_DAYS)
            print(f"{model} {version}: {result.manifest.digest}")
    shutil.rmtree(REGISTRY / "tmp", ignore_errors=True)
    print(f"demo key id: {key.key_id}")


if __name__ == "__main__":
    main()
