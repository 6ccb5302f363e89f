"""The ``openai:URL#MODEL`` agent: any OpenAI-compatible server.

    turngym eval --agent openai:http://127.0.0.1:8000/v1#tiny --suite smoke

Two modes (agent option ``mode``: ``auto`` | ``tokens`` | ``text``):

- ``tokens`` (vLLM's server): the conversation stays token-faithful. Each turn posts the stream as a
  token-id prompt to ``/completions`` with ``return_token_ids`` (vLLM returns the sampled ids and the
  prompt ids it saw, which must equal ours) and ``logprobs=0`` (the sampled ids' logprobs). The
  tokenizer for the chat template is loaded locally from option ``tokenizer`` or else from the
  server's model ``root`` when that is a local directory. Episodes are trainable.
- ``text`` (any chat API): messages go to ``/chat/completions`` and the reply text comes back; no
  token stream, so the episodes are marked not trainable.

``auto`` picks ``tokens`` when ``/models`` says the server is vLLM (``owned_by == "vllm"``), else
``text``. Options: sampling fields, ``api_key`` (or ``OPENAI_API_KEY``), ``timeout`` (seconds per
request, default 600), ``tokenizer``, ``system_prompt``, ``chat_template``, ``mode``.
A failed or timed-out request raises; the runner ends that episode with the error recorded.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Literal

import gymnasium

from turngym.agents.base import Policy
from turngym.agents.llm import Backend, Generation, LLMAgent, record_cuts
from turngym.agents.sampling import SamplingConfig
from turngym.agents.templates import resolve_chat_template
from turngym.core.errors import BackendError, ConfigError
from turngym.core.types import Action, Episode, Observation

__all__ = ["OpenAIAgent", "OpenAIBackend"]

Mode = Literal["auto", "tokens", "text"]


class OpenAIBackend(Backend):
    """An HTTP client of one OpenAI-compatible server (httpx, async)."""

    name = "openai"

    def __init__(self, *, base_url: str, model: str, api_key: str | None = None, timeout: float = 600.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self.tokenizer: Any = None
        self.eos_ids: set[int] = set()

    @property
    def client(self) -> Any:
        """The httpx client of the running event loop (a client cannot outlive its loop)."""
        import httpx

        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = httpx.AsyncClient(base_url=self.base_url, headers=self._headers, timeout=self._timeout)
            self._client_loop = loop
        return self._client

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = await self.client.post(path, json=body)
        if resp.status_code != 200:
            raise BackendError(f"{self.base_url}{path} answered {resp.status_code}: {resp.text[:500]}")
        return resp.json()

    async def models(self) -> list[dict[str, Any]]:
        resp = await self.client.get("/models")
        if resp.status_code != 200:
            raise BackendError(f"{self.base_url}/models answered {resp.status_code}: {resp.text[:300]}")
        return list(resp.json().get("data", []))

    def load_tokenizer(self, path: str) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.eos_token_id is not None:
            self.eos_ids.add(self.tokenizer.eos_token_id)
        cfg = Path(path) / "generation_config.json"
        if cfg.is_file():
            import json

            eos = json.loads(cfg.read_text()).get("eos_token_id")
            self.eos_ids.update([eos] if isinstance(eos, int) else (eos or []))

    async def generate(
        self, prompt: list[int], sampling: SamplingConfig, *, pattern: str | None = None, seed: int | None = None
    ) -> Generation:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": list(prompt),
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "logprobs": 0,
            "return_token_ids": True,
            "return_tokens_as_token_ids": True,
            "skip_special_tokens": False,
            "include_stop_str_in_output": True,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if seed is not None:
            body["seed"] = seed
        if pattern:
            body["structured_outputs"] = {"regex": pattern}
        data = await self._post("/completions", body)
        choice = data["choices"][0]
        ids = choice.get("token_ids")
        seen = choice.get("prompt_token_ids") or data.get("prompt_token_ids")
        if ids is None:
            raise BackendError(
                f"{self.base_url} returned no token_ids: it is not a vLLM server that supports return_token_ids; "
                "use mode=text (episodes not trainable)"
            )
        if seen is not None and list(seen) != list(prompt):
            raise BackendError(f"{self.base_url} saw a prompt of {len(seen)} ids that differs from the {len(prompt)} sent")
        logprobs = (choice.get("logprobs") or {}).get("token_logprobs") or []
        if len(logprobs) != len(ids) or any(x is None for x in logprobs):
            raise BackendError(f"{self.base_url} returned {len(ids)} ids but {len(logprobs)} logprobs")
        eos = ids[-1] if ids and ids[-1] in self.eos_ids else None
        reason = choice.get("finish_reason")
        return Generation(
            ids=[int(i) for i in ids],
            logprobs=[float(x) for x in logprobs],
            eos_id=eos,
            finish_reason=reason if isinstance(reason, str) else None,
        )

    async def chat(
        self, messages: list[dict[str, Any]], sampling: SamplingConfig, *, seed: int | None, cuts: list[bool] | None = None
    ) -> str:
        """The reply's text; ``cuts`` gets whether the server cut it at ``max_tokens`` (finish_reason "length")."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if seed is not None:
            body["seed"] = seed
        data = await self._post("/chat/completions", body)
        choice = data["choices"][0]
        if cuts is not None:
            cuts.append(choice.get("finish_reason") == "length")
        return choice["message"].get("content") or ""

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await client.aclose()


class _TextPolicy(Policy):
    """Text mode: the chat messages go to the server; no token stream."""

    def __init__(self, *, backend: OpenAIBackend, sampling: SamplingConfig, system: str | None, seeds: Any) -> None:
        self.backend = backend
        self.sampling = sampling
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        self.seeds = seeds
        self.cuts: list[bool] = []

    async def act(self, observation: Observation) -> Action:
        from turngym.agents.conversation import template_message

        self.messages.extend(template_message(m) for m in observation.messages)
        text = await self.backend.chat(self.messages, self.sampling, seed=next(self.seeds), cuts=self.cuts)
        self.messages.append({"role": "assistant", "content": text})
        return text

    def finish(self, episode: Episode) -> None:
        episode.trainable = False  # no token stream: evaluation only
        record_cuts(episode, self.cuts)


class OpenAIAgent(LLMAgent):
    """``openai:URL#MODEL``. See the module docstring."""

    def __init__(self, *, mode: Mode = "auto", tokenizer: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode: Mode = mode
        self.tokenizer_path = tokenizer
        self._resolving: asyncio.Lock | None = None

    async def _resolve_mode(self) -> None:
        if self._resolving is None:
            self._resolving = asyncio.Lock()
        async with self._resolving:  # episodes start together; ask the server once
            if self.mode == "text" or (self.mode == "tokens" and self.backend.tokenizer is not None):
                return
            await self._ask_server()

    async def _ask_server(self) -> None:
        backend: OpenAIBackend = self.backend  # type: ignore[assignment]
        models = await backend.models()
        entry = next((m for m in models if m.get("id") == backend.model), None)
        if entry is None:
            names = ", ".join(str(m.get("id")) for m in models)
            raise ConfigError(f"the server {backend.base_url} has no model {backend.model!r}: it serves {names}")
        if self.mode == "auto":
            self.mode = "tokens" if entry.get("owned_by") == "vllm" else "text"
        if self.mode == "tokens":
            path = self.tokenizer_path or entry.get("root")
            if not path or not Path(path).is_dir():
                raise ConfigError(
                    f"token mode needs the model's tokenizer here: the server's model root {path!r} is not a local "
                    "directory; pass --set agent.tokenizer=DIR, or --set agent.mode=text (not trainable)"
                )
            backend.load_tokenizer(str(path))
        self.trainable = self.mode == "tokens"

    async def start(self, env: gymnasium.Env, *, seed: int | None) -> Policy:
        await self._resolve_mode()
        policy = await super().start(env, seed=seed)
        if self.mode == "text":
            return _TextPolicy(
                backend=self.backend,  # type: ignore[arg-type]
                sampling=self.sampling,
                system=policy.system,  # type: ignore[attr-defined]
                seeds=policy.seeds,  # type: ignore[attr-defined]
            )
        return policy

    @classmethod
    def from_spec(cls, rest: str = "", **options: Any) -> OpenAIAgent:
        url, _, model = rest.partition("#")
        if not url.startswith(("http://", "https://")) or not model:
            raise ConfigError(
                f"bad openai agent spec {rest!r}: write openai:URL#MODEL, e.g. openai:http://127.0.0.1:8000/v1#tiny"
            )
        sampling, options = SamplingConfig.split_options(options)
        mode = options.pop("mode", "auto")
        if mode not in ("auto", "tokens", "text"):
            raise ConfigError(f"mode must be auto, tokens or text, got {mode!r}")
        tokenizer = options.pop("tokenizer", None)
        system = options.pop("system_prompt", None)
        template = resolve_chat_template(options.pop("chat_template", None))
        api_key = options.pop("api_key", None) or os.environ.get("OPENAI_API_KEY")
        timeout = float(options.pop("timeout", 600.0))
        if options:
            raise ConfigError(
                f"unknown openai agent options {sorted(options)}: use sampling fields "
                f"({', '.join(SamplingConfig.model_fields)}), mode, tokenizer, system_prompt, chat_template, "
                "api_key, timeout"
            )
        backend = OpenAIBackend(base_url=url, model=model, api_key=api_key, timeout=timeout)
        return cls(
            backend=backend,
            sampling=sampling,
            system_prompt=system,
            chat_template=template,
            name=f"openai:{model}",
            mode=mode,
            tokenizer=tokenizer,
            trainable=mode != "text",
        )

