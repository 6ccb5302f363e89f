"""The token-faithful conversation: one token stream per episode, exactly as the policy saw it.

    conv = Conversation(tokenizer=tok, system="Guess the number. Write [n].")
    conv.add_observation([user("I am thinking of a number...")])    # template tokens, mask 0
    gen = await backend.generate(conv.tokens, sampling)                # the prompt is the stream
    text = conv.add_reply(gen.ids, gen.logprobs, eos=gen.ended_with_eos)  # sampled ids, mask 1
    conv.add_observation([user("The secret is higher than 50.")])
    conv.tokens, conv.mask, conv.logprobs, conv.spans

The rules (DESIGN.md, Agents and the token contract):

- Sampled ids are appended as sampled, never re-tokenised; their logprobs go beside them, mask 1.
  Everything else (system prompt, observations, the template's role markers) has mask 0 and
  logprob 0.0.
- New observation messages are appended as the suffix the chat template adds for them: render
  base+new, subtract the render of base. Templates are not always append-only (Qwen3's drops the
  ``<think>`` blocks of earlier assistant turns once a new user message follows), so the base is
  rendered with every assistant reply replaced by a neutral placeholder: the template renders a
  placeholder the same way in both renders, and the suffix depends only on the conversation's
  structure, never on earlier replies. Nothing already in the stream is ever changed.
- The template's end-of-turn marker is not added twice: if the reply ended with the EOS token the
  model sampled and the template's suffix starts with that token's text, it is skipped.
- The first observation's tools go to the template (``tools=``) when the template takes tools.
- A render is a pure function of the placeholder conversation, so renders and their token ids are
  memoised per tokenizer: episodes of one game ask for the same few again and again.

Errors: ``TemplateError`` when a template's renders do not extend each other even with the
placeholder (the template rewrites structure, not only content): pick another template.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Literal

from turngym.core.errors import TemplateError
from turngym.core.types import Message

__all__ = ["Conversation", "TemplateError"]

#: what stands for an assistant reply when only the template's structure matters
PLACEHOLDER = "x"
#: characters of renders (and their keys) memoised per tokenizer
MEMO_CHARS = 16_000_000

SpanKind = Literal["prompt", "action", "observation"]


class _RenderMemo:
    """Renders and their token ids by key, least recently used out past ``max_chars`` characters
    (keys and renders; long tool transcripts rarely repeat, short game turns do)."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.chars = 0
        self._entries: OrderedDict[str, tuple[str, list[int]]] = OrderedDict()

    def get(self, key: str, render: Callable[[], tuple[str, list[int]]]) -> tuple[str, list[int]]:
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
            return hit
        hit = self._entries[key] = render()
        self.chars += len(key) + len(hit[0])
        while self.chars > self.max_chars and len(self._entries) > 1:
            old, (text, _) = self._entries.popitem(last=False)
            self.chars -= len(old) + len(text)
        return hit


def _memoised(tokenizer: Any, key: str, render: Callable[[], tuple[str, list[int]]]) -> tuple[str, list[int]]:
    """``render()`` (a render and its token ids), memoised per tokenizer under ``key``."""
    memo = tokenizer.__dict__.get("_turngym_renders")
    if memo is None:
        memo = tokenizer.__dict__["_turngym_renders"] = _RenderMemo(MEMO_CHARS)
    return memo.get(key, render)


def template_message(message: Message) -> dict[str, Any]:
    """A message as chat templates take it: text content (images are not rendered by text
    templates), tool calls with JSON-string arguments, tool call id."""
    out = message.to_openai()
    out["content"] = message.text
    return out


class Conversation:
    """One episode's token stream; see the module docstring."""

    def __init__(
        self,
        *,
        tokenizer: Any,
        system: str | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
        chat_template: str | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        template = chat_template or getattr(tokenizer, "chat_template", None) or ""
        if not template:
            raise TemplateError(
                f"the tokenizer {getattr(tokenizer, 'name_or_path', tokenizer)!r} has no chat template: "
                "pass chat_template=... (a Jinja string) or use a chat model"
            )
        self.tools = list(tools) if tools and "tools" in template else None
        self.messages: list[dict[str, Any]] = []
        if system:
            self.messages.append({"role": "system", "content": system})
        self.tokens: list[int] = []
        self.mask: list[int] = []
        self.logprobs: list[float] = []
        self.spans: list[tuple[SpanKind, int, int]] = []
        self._last_eos: int | None = None  # the EOS id that ended the last reply, if any
        #: the template's render (replies as placeholders) up to the current generation prompt
        self._prompt_render = ""
        #: the memo key of that render: the first messages' JSON, then each observation's, chained
        self._key = ""

    # -- branching ------------------------------------------------------------------------------
    def mark(self) -> tuple[Any, ...]:
        """Where the stream stands now, cheaply (lengths and references): ``fork(mark)`` goes back there."""
        return (len(self.tokens), len(self.spans), len(self.messages), self._last_eos, self._prompt_render, self._key)

    def fork(self, mark: tuple[Any, ...]) -> Conversation:
        """A new conversation holding this one's stream up to ``mark`` (see ``mark``), to be continued on
        its own: a branch of a tree rollout. The copied replies keep their ids and logprobs but get mask 0:
        they were sampled once, in this conversation, and a branch must not take their loss again."""
        n_tokens, n_spans, n_messages, last_eos, render, key = mark
        other = Conversation.__new__(Conversation)
        other.tokenizer, other.chat_template, other.tools = self.tokenizer, self.chat_template, self.tools
        other.messages = [dict(m) for m in self.messages[:n_messages]]
        other.tokens = self.tokens[:n_tokens]
        other.mask = [0] * n_tokens
        other.logprobs = self.logprobs[:n_tokens]
        other.spans = self.spans[:n_spans]
        other._last_eos, other._prompt_render, other._key = last_eos, render, key
        return other

    # -- rendering ------------------------------------------------------------------------------
    def _render(self, messages: list[dict[str, Any]], *, generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages,
            tools=self.tools,
            chat_template=self.chat_template,
            tokenize=False,
            add_generation_prompt=generation_prompt,
        )

    def _encode(self, text: str, *, after: str | None = None) -> list[int]:
        """Ids of ``text`` as it tokenises after ``after`` (a special token's text), so a
        tokenizer that marks the start of a text (SentencePiece's leading space) does not.
        With an anchor the encodings are memoised per tokenizer like the renders: the anchor's own ids are
        the same every time, and a suffix that repeats (a game's usual answer) whatever came before it is
        encoded once, where the render memo, whose keys chain the whole conversation, rarely hits."""
        if after is None:
            return self.tokenizer.encode(text, add_special_tokens=False)
        head = self._encoded(after)
        ids = self._encoded(after + text)
        if ids[: len(head)] != head:
            raise TemplateError(f"the tokenizer merges {after!r} with the text after it: use a special token")
        return ids[len(head) :]

    def _encoded(self, text: str) -> list[int]:
        """``tokenizer.encode(text)`` without special tokens, memoised (the key cannot be a render's: those
        are JSON). Callers slice the list, never hand it out."""
        return _memoised(
            self.tokenizer, "\x01" + text, lambda: ("", self.tokenizer.encode(text, add_special_tokens=False))
        )[1]

    @staticmethod
    def _placeholders(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"role": "assistant", "content": PLACEHOLDER} if m["role"] == "assistant" else m for m in messages]

    # -- the stream -----------------------------------------------------------------------------
    def _append(self, kind: SpanKind, ids: Sequence[int], mask: int, logprobs: Sequence[float] | None = None) -> tuple[int, int]:
        start = len(self.tokens)
        self.tokens.extend(int(i) for i in ids)
        self.mask.extend([mask] * len(ids))
        self.logprobs.extend([float(x) for x in logprobs] if logprobs is not None else [0.0] * len(ids))
        end = len(self.tokens)
        self.spans.append((kind, start, end))
        return start, end

    def add_observation(self, messages: Sequence[Message]) -> tuple[int, int]:
        """Append the template's tokens for ``messages`` and the next generation prompt; the span."""
        new = [template_message(m) for m in messages]
        if not self.tokens:
            self.messages.extend(new)
            self._key = json.dumps([self.chat_template, self.tools, self.messages], sort_keys=True, default=str)
            self._prompt_render, ids = _memoised(self.tokenizer, self._key, self._prompt)
            return self._append("prompt", ids, 0)
        if not self.messages or self.messages[-1]["role"] != "assistant":
            raise TemplateError("add_observation after an observation: add the reply first (add_reply)")
        # the suffix depends only on the placeholder conversation (and the EOS the reply ended with):
        # episodes of one game repeat those a lot, so renders and encodings are memoised per tokenizer.
        # The key chains the previous one (a reply placeholder sits between observations) with this
        # observation's JSON, which never holds a NUL: no JSON of the whole conversation per turn.
        key = self._key + "\0" + json.dumps([new, self._last_eos], sort_keys=True, default=str)
        self._prompt_render, ids = _memoised(self.tokenizer, key, lambda: self._suffix(self._placeholders(self.messages), new))
        self._key = key
        self.messages.extend(new)
        return self._append("observation", ids, 0)

    def _prompt(self) -> tuple[str, list[int]]:
        """The render of the first messages with the generation prompt, and its ids."""
        text = self._render(self.messages, generation_prompt=True)
        return text, self._encode(text)

    def _suffix(self, base: list[dict[str, Any]], new: list[dict[str, Any]]) -> tuple[str, list[int]]:
        """The full render with ``new`` and the generation prompt, and the ids of what it adds."""
        # the render up to the last reply's generation prompt is the previous turn's full render
        head = self._prompt_render + PLACEHOLDER
        full = self._render(base + new, generation_prompt=True)
        if not full.startswith(head):
            raise TemplateError(
                "the chat template does not render the conversation as a prefix of the longer one, even with "
                f"the replies replaced by a placeholder (rendered {full[:200]!r}...): it rewrites earlier turns' "
                "structure; use a template that only rewrites content (chat_template=...)"
            )
        suffix = full[len(head) :]
        eos_text = self.tokenizer.decode([self._last_eos]) if self._last_eos is not None else None
        if eos_text and suffix.startswith(eos_text):
            suffix = suffix[len(eos_text) :]  # the model sampled the end-of-turn token already
            anchor = eos_text
        else:
            anchor = self._anchor()
        return full, self._encode(suffix, after=anchor)

    def _anchor(self) -> str | None:
        """A special token's text to tokenise suffixes after (EOS, else none)."""
        eos = getattr(self.tokenizer, "eos_token", None)
        return eos if isinstance(eos, str) and eos else None

    def add_reply(
        self, ids: Sequence[int], logprobs: Sequence[float], *, eos_id: int | None = None, text: str | None = None
    ) -> str:
        """Append sampled ``ids`` (mask 1) and their logprobs; the reply's text (without the EOS).

        ``eos_id``: the end-of-turn token the reply ended with (the last id), or None if it
        stopped at a stop string or the token limit. ``text`` overrides the decoded reply text.
        """
        if len(ids) != len(logprobs):
            raise ValueError(f"{len(ids)} sampled ids but {len(logprobs)} logprobs: the backend must return one per id")
        if not self.tokens or (self.messages and self.messages[-1]["role"] == "assistant"):
            raise TemplateError("add_reply before an observation: the stream must end with a generation prompt")
        self._append("action", ids, 1, logprobs)
        self._last_eos = eos_id
        body = list(ids[:-1]) if eos_id is not None and ids and ids[-1] == eos_id else list(ids)
        if text is None:
            text = self.tokenizer.decode(body, skip_special_tokens=False)
        self.messages.append({"role": "assistant", "content": text})
        return text
