#!/usr/bin/env bash
# Writes the reward (1 or 0) into $REWARD_FILE.
if [ -x /work/run.sh ] && [ "$(stat -c %a /work/secret.txt)" = "600" ]; then echo 1 > "$REWARD_FILE"; else echo 0 > "$REWARD_FILE"; fi
