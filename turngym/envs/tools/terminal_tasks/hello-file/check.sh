#!/usr/bin/env bash
# Writes the reward (1 or 0) into $REWARD_FILE.
if [ "$(cat /work/hello.txt 2>/dev/null)" = "Hello, world!" ] && [ "$(wc -l < /work/hello.txt)" -eq 1 ]; then echo 1 > "$REWARD_FILE"; else echo 0 > "$REWARD_FILE"; fi
