"""Chat templates an LLM agent may be given in place of its model's own (``chat_template=`` of the
``hf:``, ``vllm:`` and ``openai:`` agents): a name from ``turngym.agents.tiny.TEMPLATES``, a file, or
Jinja text."""

from __future__ import annotations

from pathlib import Path

from turngym.core.errors import ConfigError

__all__ = ["resolve_chat_template"]


def resolve_chat_template(value: str | None) -> str | None:
    """A template name from ``turngym.agents.tiny.TEMPLATES``, a file path, or Jinja text."""
    if not value:
        return None
    from turngym.agents.tiny import TEMPLATES

    if value in TEMPLATES:
        return TEMPLATES[value]
    path = Path(value)
    if "{" not in value and path.is_file():
        return path.read_text()
    if "{" not in value:
        raise ConfigError(
            f"chat_template {value!r} is neither a template name ({', '.join(TEMPLATES)}), a file, nor Jinja text"
        )
    return value
