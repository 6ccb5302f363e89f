#!/usr/bin/env bash
# Writes the reward (1 or 0) into $REWARD_FILE.
if [ -z "$(ls /work/photos | grep "\.jpeg$")" ] && [ "$(ls /work/photos | grep -c "\.jpg$")" -eq 4 ] && [ -f /work/photos/notes.txt ] && [ -f "/work/photos/beach day.jpg" ]; then echo 1 > "$REWARD_FILE"; else echo 0 > "$REWARD_FILE"; fi
