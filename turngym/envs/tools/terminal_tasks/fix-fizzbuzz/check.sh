#!/usr/bin/env bash
# Writes the reward (1 or 0) into $REWARD_FILE.
if [ "$(python3 /work/fizzbuzz.py 2>/dev/null)" = "$(printf '1\n2\nFizz\n4\nBuzz\nFizz\n7\n8\nFizz\nBuzz\n11\nFizz\n13\n14\nFizzBuzz')" ]; then echo 1 > "$REWARD_FILE"; else echo 0 > "$REWARD_FILE"; fi
