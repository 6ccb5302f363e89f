"""Runs in .venv-openenv (OpenEnv 0.10.0, no turngym): OpenEnv's own GenericEnvClient plays a plan of episodes
against a served env and prints the transcripts as one JSON line.

    python openenv_play.py URL PLAN.json      # PLAN: {"plan": [{"seed": 0, "actions": [{...}, ...]}], "headers": {}}
"""

import json
import sys
from pathlib import Path

from openenv.core.generic_client import GenericEnvClient

url, plan_file = sys.argv[1], sys.argv[2]
spec = json.loads(Path(plan_file).read_text())
transcripts = []
with GenericEnvClient(base_url=url, message_timeout_s=180, headers=spec.get("headers") or None).sync() as env:
    for episode in spec["plan"]:
        r = env.reset(seed=episode["seed"])
        rec = [[r.observation["text"], r.reward, r.done]]
        for action in episode["actions"]:
            r = env.step(action)
            rec.append([r.observation["text"], r.reward, r.done])
        transcripts.append(rec)
    state = env.state()
print(json.dumps({"transcripts": transcripts, "state": state}))
