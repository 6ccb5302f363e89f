"""Sampling settings, and constrained sampling: restrict a model to replies an action format accepts.

``SamplingConfig`` is the one place sampling is configured (CLI: ``--set agent.temperature=0.7``).
With ``constrain=True`` every backend samples only replies that fully match the env's
``ActionFormat.pattern()`` regex: the hf backend masks logits with a ``TokenFSM`` (a DFA over
characters, compiled with ``interegular``, lifted to tokens lazily, one allowed-token set per DFA
state, the way outlines indexes a vocabulary); the vllm backends hand the regex to vLLM's
structured outputs.

    fsm = TokenFSM.build(r"\\[(-?\\d+)\\]", vocabulary(tokenizer), eos_ids=[2])
    state = fsm.initial
    allowed = fsm.allowed(state)          # numpy array of token ids
    state = fsm.advance(state, token_id)

Logprobs recorded by every backend are those of the model's own distribution (log-softmax of the
raw logits, no temperature or top-p), vLLM's ``raw_logprobs``: what a forward pass of the same model
over the stream recomputes. Under a constraint they are renormalised over the allowed tokens
(``logp - logsumexp(logp[allowed])``), because that is what vLLM's structured outputs report and
the hf backend matches it; ``TokenFSM.allowed`` recomputes the allowed sets for a trainer that wants
the unconstrained value instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["SamplingConfig", "TokenFSM", "vocabulary"]


class SamplingConfig(BaseModel):
    """How replies are sampled. Frozen: validated once, read everywhere."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    #: 0 samples greedily
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(128, ge=1)
    #: strings that end a reply; the stop string stays in the reply (it was sampled)
    stop: tuple[str, ...] = ()
    #: base seed; request k of an agent samples with seed + k, so runs repeat
    seed: int | None = None
    #: sample only replies that match the env's action format (ActionFormat.pattern())
    constrain: bool = False
    #: with ``constrain``: also only the tokenizer's own tokenization of the reply (no two adjacent
    #: tokens the tokenizer would merge, e.g. "1" then "6" where "16" is a token); hf backend only
    canonical: bool = False

    @field_validator("stop", mode="before")
    @classmethod
    def _split_stop(cls, value: Any) -> Any:
        if isinstance(value, str):  # "--set agent.stop=a,b" arrives as one string
            return tuple(s for s in value.split(",") if s)
        return value

    @classmethod
    def split_options(cls, options: dict[str, Any]) -> tuple[SamplingConfig, dict[str, Any]]:
        """The sampling fields of ``options`` (also under ``sampling={...}``) and the rest."""
        options = dict(options)
        fields = dict(options.pop("sampling", None) or {})
        for name in cls.model_fields:
            if name in options:
                fields[name] = options.pop(name)
        return cls(**fields), options


def vocabulary(tokenizer: Any) -> list[str | None]:
    """The text each token id adds when it follows other text, or None for special tokens and
    partial UTF-8 bytes (which constrained sampling never picks).

    Decoded after an anchor token, so SentencePiece's word-initial space is kept (``"▁is"`` -> ``" is"``).
    """
    anchor = tokenizer.encode("a", add_special_tokens=False)[-1:]
    head = tokenizer.decode(anchor)
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    n = len(tokenizer)
    texts = tokenizer.batch_decode([anchor + [i] for i in range(n)], skip_special_tokens=False)
    out: list[str | None] = []
    for i, text in enumerate(texts):
        if i in special or not text.startswith(head):
            out.append(None)
            continue
        piece = text[len(head) :]
        out.append(None if (not piece or "\ufffd" in piece) else piece)
    return out


class TokenFSM:
    """A regex lifted from characters to tokens: ``allowed(state)`` and ``advance(state, id)``.

    Lazily indexed: the allowed-token set of a DFA state is computed on its first visit (one walk
    of the vocabulary) and cached, so an action format's small DFA costs a few walks per agent.
    """

    def __init__(
        self, *, fsm: Any, vocab: Sequence[str | None], eos_ids: Sequence[int], encode: Any = None
    ) -> None:
        self._fsm = fsm
        self._vocab = vocab
        self.eos_ids = np.asarray(sorted(set(eos_ids)), dtype=np.int64)
        self._eos = set(self.eos_ids.tolist())
        self._allowed: dict[int, tuple[np.ndarray, dict[int, int]]] = {}
        self._raw: dict[int, dict[int, int]] = {}
        #: canonical mode: text -> token ids of the tokenizer; states are then (DFA state, last token)
        self._encode = encode
        self._pairs: dict[tuple[int, int], tuple[np.ndarray, frozenset[int]]] = {}
        self.initial: Any = (fsm.initial, -1) if encode is not None else fsm.initial
        #: the state after EOS; nothing may follow
        self.done = -1

    @classmethod
    def build(
        cls, pattern: str, vocab: Sequence[str | None], *, eos_ids: Sequence[int], canonical: Any = None
    ) -> TokenFSM:
        """``canonical``: a tokenizer; then only its own tokenization of a reply is allowed (a token may
        not follow another when the tokenizer encodes their joined text differently)."""
        import interegular

        try:
            fsm = interegular.parse_pattern(pattern).to_fsm()
        except Exception as e:
            raise ValueError(
                f"cannot compile the action pattern {pattern!r} for constrained sampling ({e}): "
                "simplify the format's pattern() or sample with constrain=False"
            ) from e
        encode = None
        if canonical is not None:
            def encode(text: str) -> list[int]:
                return canonical.encode(text, add_special_tokens=False)
        return cls(fsm=fsm, vocab=vocab, eos_ids=eos_ids, encode=encode)

    def _walk(self, state: int, text: str) -> int | None:
        fsm = self._fsm
        for ch in text:
            state = fsm.map.get(state, {}).get(fsm.alphabet[ch])
            if state is None:
                return None
        return state

    def _steps(self, state: int) -> dict[int, int]:
        """token id -> the DFA state after its text, for the tokens whose text keeps a match reachable."""
        hit = self._raw.get(state)
        if hit is None:
            hit = self._raw[state] = {}
            for i, text in enumerate(self._vocab):
                if text is not None:
                    s = self._walk(state, text)
                    if s is not None and self._live(s):
                        hit[i] = s
        return hit

    def _index(self, state: int) -> tuple[np.ndarray, dict[int, int]]:
        hit = self._allowed.get(state)
        if hit is None:
            # one step of lookahead in tokens: a token may only lead where the reply is a full match or some
            # token goes on, since a match reachable in characters may not be in tokens (a word-level vocabulary
            # holds "a" but nothing that spells the "nswer" of "answer")
            steps = self._steps(state)
            finals = self._fsm.finals
            goes_on = {s: s in finals or bool(self._steps(s)) for s in set(steps.values())}
            nxt = {i: s for i, s in steps.items() if goes_on[s]}
            ids = list(nxt)
            if state in self._fsm.finals:
                ids.extend(self._eos)
            hit = self._allowed[state] = (np.asarray(sorted(ids), dtype=np.int64), nxt)
        return hit

    def _live(self, state: int) -> bool:
        """True if a final state can still be reached from ``state``."""
        live = self.__dict__.get("_live_states")
        if live is None:
            fsm = self._fsm
            live = set(fsm.finals)
            grew = True
            while grew:
                grew = False
                for s, edges in fsm.map.items():
                    if s not in live and any(t in live for t in edges.values()):
                        live.add(s)
                        grew = True
            self.__dict__["_live_states"] = live
        return state in live

    def allowed(self, state: Any) -> np.ndarray:
        """Token ids that keep the reply a prefix of a match (EOS once it is a full match)."""
        if state == self.done:
            return self.eos_ids
        if self._encode is None:
            return self._index(state)[0]
        dfa, last = state
        ids = self._index(dfa)[0]
        if last < 0:
            return ids
        return self._canonical(state)[0]

    def _canonical(self, state: tuple[int, int]) -> tuple[np.ndarray, frozenset[int]]:
        hit = self._pairs.get(state)
        if hit is None:
            dfa, last = state
            ids = self._index(dfa)[0].tolist()
            if last >= 0:
                ids = [t for t in ids if t in self._eos or self._encode(self._vocab[last] + self._vocab[t]) == [last, t]]
            hit = self._pairs[state] = (np.asarray(ids, dtype=np.int64), frozenset(ids))
        return hit

    def advance(self, state: Any, token_id: int) -> Any:
        if state == self.done or token_id in self._eos:
            return self.done
        dfa = state[0] if self._encode is not None else state
        nxt = self._index(dfa)[1].get(int(token_id))
        if nxt is None or (self._encode is not None and int(token_id) not in self._canonical(state)[1]):
            raise ValueError(f"token {token_id} is not allowed in state {state} of the action pattern")
        return (nxt, int(token_id)) if self._encode is not None else nxt
