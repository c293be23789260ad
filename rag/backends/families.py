"""Which prompt family a model expects (rag.prompting.FAMILIES), from what a backend can read of it
without loading it: a GGUF header, a server's chat template, a model's name.

A leaf, apart from rag.prompting (which imports LangChain's prompt classes), so that `rag models`
can name a model's family without them.
"""

from __future__ import annotations

# Markers of a chat template, most specific first: Llama 2's template also contains [INST].
_TEMPLATE_MARKERS = (
    ("<start_of_turn>", "gemma"),
    ("<|start_header_id|>", "llama3"),
    ("<|im_start|>", "chatml"),
    ("<<SYS>>", "llama2"),
    ("[INST]", "mistral"),
)
_INSTRUCT_WORDS = ("instruct", "chat", "-it", " it", "hermes")


def family_from_gguf_metadata(metadata: dict[str, str]) -> str:
    """The prompt family a GGUF model expects, from its embedded chat template or its name."""
    if family := family_from_chat_template(metadata.get("tokenizer.chat_template", "")):
        return family
    title = f" {metadata.get('general.name', '')} {metadata.get('general.basename', '')} ".lower()
    if not any(word in title for word in _INSTRUCT_WORDS):
        return "plain"  # a base model: continue text, do not chat
    return family_from_model_name(title, metadata.get("general.architecture", ""))


def family_from_chat_template(template: str) -> str | None:
    """The family whose special tokens a chat template (Jinja or Ollama's Go) writes, if known."""
    for marker, name in _TEMPLATE_MARKERS:
        if marker in template:
            return name
    return None


def family_from_model_name(name: str, architecture: str = "") -> str:
    """Best guess from a model name such as 'llama-2-7b-chat.Q4_K_M.gguf' or 'mistral:instruct'."""
    name = name.lower()
    if "llama-3" in name or "llama3" in name or "llama 3" in name:
        return "llama3"
    if "mistral" in name or "mixtral" in name:
        return "mistral"
    if "gemma" in name or architecture.startswith("gemma"):
        return "gemma"
    if "qwen" in name or "chatml" in name or "hermes" in name or architecture.startswith("qwen"):
        return "chatml"
    if "llama" in name or architecture == "llama":
        return "llama2"
    return "plain"
