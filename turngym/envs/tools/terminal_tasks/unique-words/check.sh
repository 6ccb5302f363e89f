#!/usr/bin/env bash
# Writes the reward (1 or 0) into $REWARD_FILE.
if [ "$(cat /work/unique.txt 2>/dev/null)" = "$(printf 'apple\nbanana\ncherry\ndate\nfig')" ]; then echo 1 > "$REWARD_FILE"; else echo 0 > "$REWARD_FILE"; fi
