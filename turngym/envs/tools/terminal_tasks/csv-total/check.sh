#!/usr/bin/env bash
# Writes the reward (1 or 0) into $REWARD_FILE.
if [ "$(tr -d "[:space:]" < /work/total.txt 2>/dev/null)" = "$(python3 -c "import csv; print(format(sum(int(r['units'])*float(r['price']) for r in csv.DictReader(open('/work/sales.csv'))), '.2f'))")" ]; then echo 1 > "$REWARD_FILE"; else echo 0 > "$REWARD_FILE"; fi
