#!/usr/bin/env bash
# Writes the reward (1 or 0) into $REWARD_FILE.
if [ "$(tr -d "[:space:]" < /work/largest.txt 2>/dev/null)" = "src/lib/data/blob.dat" ]; then echo 1 > "$REWARD_FILE"; else echo 0 > "$REWARD_FILE"; fi
