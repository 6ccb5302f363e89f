"""LLM agents: a backend that samples token ids, a token-faithful conversation per episode.

    backend (hf | vllm | openai)  prompt ids -> Generation(ids, logprobs, eos_id, finish_reason)
    LLMAgent(backend=..., sampling=SamplingConfig(...))
      .start(env, seed) -> LLMPolicy: Conversation + backend; act(obs) -> reply text (or a message
                                      with tool_calls for envs that read native tool calls)
      policy.finish(episode) writes tokens, mask, logprobs, each turn's spans, and
                             turn.info["reply_cut"] (the reply ran into max_new_tokens)

The system prompt is the env's ``description`` and its action format's ``describe()`` (agent
option ``system_prompt`` replaces it, ``""`` drops it). With ``constrain=True`` the backend samples
only replies matching ``env.action_format.pattern()``.
"""

from __future__ import annotations

import itertools
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import gymnasium

from turngym.agents.base import Agent, Policy
from turngym.agents.conversation import Conversation
from turngym.agents.sampling import SamplingConfig
from turngym.agents.templates import resolve_chat_template
from turngym.core.actions import NativeToolCalls
from turngym.core.errors import ConfigError
from turngym.core.types import Action, Episode, Message, Observation, ToolCall

__all__ = ["Backend", "Generation", "LLMAgent", "LLMPolicy", "system_prompt"]


@dataclass(frozen=True)
class Generation:
    """What a backend sampled: ids exactly as sampled, the logprob of each under the model's own
    distribution, and the EOS id if the reply ended with one (it is then ``ids[-1]``)."""

    ids: list[int]
    logprobs: list[float]
    eos_id: int | None = None
    #: why the reply ended, as the backend reports it: ``"stop"`` (EOS or a stop string), ``"length"`` (cut at
    #: ``max_new_tokens``), or None (not reported: ``cut_at_budget`` infers it)
    finish_reason: str | None = None

    def cut_at_budget(self, max_new_tokens: int) -> bool:
        """Whether the reply ended because the token budget ran out, not at EOS or a stop string."""
        if self.finish_reason is not None:
            return self.finish_reason == "length"
        return self.eos_id is None and len(self.ids) >= max_new_tokens


class Backend(ABC):
    """Turns prompt ids into sampled ids. Async, so concurrent episodes share one backend."""

    #: a Hugging Face tokenizer with a chat template
    tokenizer: Any
    name: str = "backend"

    @abstractmethod
    async def generate(
        self, prompt: list[int], sampling: SamplingConfig, *, pattern: str | None = None, seed: int | None = None
    ) -> Generation:
        """Sample one reply to ``prompt``. ``pattern``: a regex the whole reply must match."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release the model, the engine, the connection."""

    # -- for trainers: weight sync and the logprob probe ------------------------------------------
    async def load_weights(self, weights: Iterable[tuple[str, Any]]) -> None:
        """Serve new weights: ``(name, tensor)`` pairs with the names of the Hugging Face model's
        ``state_dict`` (a full set or any subset). Requests started after this sample from them."""
        raise NotImplementedError(f"the {self.name} backend cannot take new weights: train with hf or vllm")

    async def prompt_logprobs(self, ids: list[int]) -> list[float]:
        """log p(ids[k] | ids[:k]) under the weights being served, for k = 1..len(ids)-1 (the raw model
        distribution, no temperature, no constraint), so a trainer can check a sync took effect."""
        raise NotImplementedError(f"the {self.name} backend does not report prompt logprobs")


def system_prompt(env: gymnasium.Env) -> str:
    """The env's description and how to write an action."""
    unwrapped = env.unwrapped
    parts = [getattr(unwrapped, "description", "") or ""]
    fmt = getattr(unwrapped, "action_format", None)
    if fmt is not None:
        parts.append(fmt.describe())
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def tool_calls_in(text: str) -> list[ToolCall]:
    """Hermes/Qwen-style ``<tool_call>{json}</tool_call>`` blocks of a reply (malformed ones skipped:
    the env reports a reply without valid calls)."""
    calls = []
    for i, blob in enumerate(_TOOL_CALL.findall(text)):
        try:
            data = json.loads(blob)
            calls.append(ToolCall(id=f"call_{i}", name=str(data["name"]), arguments=dict(data.get("arguments") or {})))
        except (ValueError, KeyError, TypeError):
            continue
    return calls


class LLMPolicy(Policy):
    """One episode: the conversation and the backend that extends it."""

    def __init__(
        self,
        *,
        backend: Backend,
        sampling: SamplingConfig,
        system: str | None,
        pattern: str | None,
        native_tools: bool,
        chat_template: str | None,
        seeds: Any,
    ) -> None:
        self.backend = backend
        self.sampling = sampling
        self.system = system
        self.pattern = pattern
        self.native_tools = native_tools
        self.chat_template = chat_template
        self.seeds = seeds
        self.conversation: Conversation | None = None
        #: per reply: cut at max_new_tokens (written to each turn's info["reply_cut"] by ``finish``)
        self.cuts: list[bool] = []
        #: per turn: where the conversation stood before the turn's observation (``Conversation.mark``)
        self.marks: list[tuple[Any, ...] | None] = []

    async def act(self, observation: Observation) -> Action:
        conv = self.conversation
        self.marks.append(None if conv is None else conv.mark())
        if conv is None:
            conv = self.conversation = Conversation(
                tokenizer=self.backend.tokenizer,
                system=self.system,
                tools=[t.to_openai() for t in observation.tools],
                chat_template=self.chat_template,
            )
        conv.add_observation(observation.messages)
        gen = await self.backend.generate(list(conv.tokens), self.sampling, pattern=self.pattern, seed=next(self.seeds))
        text = conv.add_reply(gen.ids, gen.logprobs, eos_id=gen.eos_id)
        self.cuts.append(gen.cut_at_budget(self.sampling.max_new_tokens))
        if self.native_tools:
            calls = tool_calls_in(text)
            if calls:
                return Message(role="assistant", content=text, tool_calls=calls)
        return text

    def continue_from(self, parent: LLMPolicy, turn: int) -> None:
        """Take ``parent``'s conversation as it stood before turn ``turn``'s observation (its replies copied
        with mask 0, not re-sampled): this policy then answers turn ``turn`` on its own, a branch."""
        if not 0 <= turn < len(parent.marks):
            raise ValueError(f"cannot branch at turn {turn}: the parent policy answered {len(parent.marks)} turns")
        mark = parent.marks[turn]
        self.conversation = None if mark is None or parent.conversation is None else parent.conversation.fork(mark)
        self.cuts = parent.cuts[:turn]
        self.marks = parent.marks[:turn]

    def finish(self, episode: Episode) -> None:
        record_cuts(episode, self.cuts)
        conv = self.conversation
        if conv is None:
            return
        episode.trainable = True  # an exact token stream
        episode.tokens = list(conv.tokens)
        episode.mask = list(conv.mask)
        episode.logprobs = list(conv.logprobs)
        actions = [(s, e) for kind, s, e in conv.spans if kind == "action"]
        observations = [(s, e) for kind, s, e in conv.spans if kind == "observation"]
        for i, turn in enumerate(episode.turns):
            turn.action_span = actions[i] if i < len(actions) else None
            turn.observation_span = observations[i] if i < len(observations) else None


def record_cuts(episode: Episode, cuts: list[bool]) -> None:
    """``turn.info["reply_cut"]``: whether each turn's reply was cut at ``max_new_tokens`` (the benchmarks
    summary counts them: ``cut_replies``, ``cut_reply_rate``)."""
    for turn, cut in zip(episode.turns, cuts, strict=False):
        turn.info["reply_cut"] = cut


def split_spec_options(
    kind: str, rest: str, options: dict[str, Any], backend_keys: tuple[str, ...]
) -> tuple[SamplingConfig, dict[str, Any], dict[str, Any]]:
    """An ``hf:PATH`` / ``vllm:PATH`` agent's options: the sampling fields, the agent's own
    (system_prompt, chat_template: resolved, ready for ``LLMAgent(**agent_opts)``) and the backend's
    (``backend_keys``); any other one is an error."""
    if not rest:
        raise ConfigError(f"the {kind} agent needs a model directory: --agent {kind}:PATH")
    sampling, options = SamplingConfig.split_options(options)
    agent_opts = {
        "system_prompt": options.pop("system_prompt", None),
        "chat_template": options.pop("chat_template", None),
    }
    backend_opts = {k: options.pop(k) for k in backend_keys if k in options}
    if options:
        raise ConfigError(
            f"unknown {kind} agent options {sorted(options)}: use sampling fields "
            f"({', '.join(SamplingConfig.model_fields)}), system_prompt, chat_template, {', '.join(backend_keys)}"
        )
    agent_opts["chat_template"] = resolve_chat_template(agent_opts["chat_template"])
    return sampling, agent_opts, backend_opts


class LLMAgent(Agent):
    """An agent that samples from a ``Backend`` through a token-faithful conversation."""

    def __init__(
        self,
        *,
        backend: Backend,
        sampling: SamplingConfig | None = None,
        system_prompt: str | None = None,
        chat_template: str | None = None,
        name: str | None = None,
        trainable: bool = True,
    ) -> None:
        self.backend = backend
        self.sampling = sampling or SamplingConfig()
        self.system_prompt = system_prompt
        self.chat_template = chat_template
        self.name = name or backend.name
        self.trainable = trainable
        self._episodes = itertools.count()

    async def start(self, env: gymnasium.Env, *, seed: int | None) -> Policy:
        fmt = getattr(env.unwrapped, "action_format", None)
        pattern = fmt.pattern() if (self.sampling.constrain and fmt is not None) else None
        base = self.sampling.seed
        episode = next(self._episodes)
        # request seeds: (base seed, episode k of this agent, turn t); None leaves sampling unseeded
        seeds = (
            itertools.repeat(None)
            if base is None
            else (hash((base, episode, t)) & 0x7FFFFFFF for t in itertools.count())
        )
        return LLMPolicy(
            backend=self.backend,
            sampling=self.sampling,
            system=system_prompt(env) if self.system_prompt is None else (self.system_prompt or None),
            pattern=pattern,
            native_tools=isinstance(fmt, NativeToolCalls),
            chat_template=self.chat_template,
            seeds=seeds,
        )

    async def branch(self, env: gymnasium.Env, *, seed: int | None, parent: Policy, turn: int) -> Policy:
        """A policy that continues ``parent`` from turn ``turn`` (its conversation up to there, copied), with
        request seeds of its own: one continuation of a tree rollout (turngym.agents.runner.branch_tasks)."""
        if not isinstance(parent, LLMPolicy):
            raise TypeError(f"an LLM agent branches its own policies, not a {type(parent).__name__}")
        policy = await self.start(env, seed=seed)
        assert isinstance(policy, LLMPolicy)
        policy.continue_from(parent, turn)
        return policy

    async def aclose(self) -> None:
        await self.backend.aclose()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "trainable": self.trainable, "sampling": self.sampling.model_dump()}
