"""Adapters for the trainers users already run. Each lives in its own module and imports nothing of the
trainer it serves (the trainer calls it), so importing one costs no heavy dependency:

    turngym.integrations.trl   TRL's ``GRPOTrainer(environment_factory=...)`` over any turngym env id
"""
