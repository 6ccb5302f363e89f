#!/usr/bin/env bash
# Writes the reward (1 or 0) into $REWARD_FILE.
if tar -tzf /work/backup.tar.gz >/tmp/list 2>/dev/null && grep -q "^project/src/app.py$" /tmp/list && grep -q "^project/README$" /tmp/list && ! grep -q "\.log$" /tmp/list; then echo 1 > "$REWARD_FILE"; else echo 0 > "$REWARD_FILE"; fi
