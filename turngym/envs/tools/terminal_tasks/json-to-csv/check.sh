#!/usr/bin/env bash
# Writes the reward (1 or 0) into $REWARD_FILE.
if [ "$(cat /work/users.csv 2>/dev/null)" = "$(printf 'name,email\nada,ada@example.com\nalan,alan@example.com\ngrace,grace@example.com\nlinus,linus@example.com')" ]; then echo 1 > "$REWARD_FILE"; else echo 0 > "$REWARD_FILE"; fi
