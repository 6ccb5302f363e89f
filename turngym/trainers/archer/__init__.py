"""ArCHer (Zhou et al. 2024): an off-policy utterance-level critic and a token-level REINFORCE actor.

    config.py   ArcherConfig, the reference hyper-parameters as defaults
    buffer.py   the turn replay buffer (s, a, r, s', done), filled from Episodes, saved with the run
    critic.py   double Q / double V heads over a pluggable encoder, target copies
    math.py     TD target, critic losses, advantage, actor loss, Polyak update (pure functions)
    encoder.py  the critic's text encoders: a tiny random-init Llama over the policy's tokenizer (default), or
                the pretrained all-MiniLM-L6-v2 (critic.encoder: minilm); frozen or fine-tuned
    sampler.py  a~ ~ pi_theta(.|s) with the trainer's model, and the actor's logprobs
    offline.py  a saved run's episodes for the offline buffer
    trainer.py  ArcherTrainer: ArCHer's part of the training loop (collect, critic steps, actor steps)

Names are loaded lazily, so reading the config does not import torch.
"""

from __future__ import annotations

from turngym.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "ArcherConfig": "config",
    "ArcherCriticConfig": "config",
    "ArcherActorConfig": "config",
    "ReplayBuffer": "buffer",
    "Transition": "buffer",
    "TransitionBatch": "buffer",
    "collate": "buffer",
    "episode_transitions": "buffer",
    "history_text": "buffer",
    "CriticLosses": "critic",
    "DoubleCritic": "critic",
    "critic_losses": "critic",
    "TextEncoder": "critic",
    "FrozenEncoder": "critic",
    "critic_encoder": "encoder",
    "minilm_encoder": "encoder",
    "TokenBaseline": "critic",
    "make_target": "critic",
    "pool_hidden": "critic",
    "ArcherTrainer": "trainer",
    "Sampled": "sampler",
    "load_offline_episodes": "offline",
    "sample_utterances": "sampler",
    "offline_store": "offline",
})
