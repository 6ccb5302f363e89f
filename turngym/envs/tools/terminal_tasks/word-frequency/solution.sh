#!/usr/bin/env bash
set -e
tr -cs 'A-Za-z' '\n' < /work/text.txt | tr 'A-Z' 'a-z' | grep -v '^$' | sort | uniq -c | sort -rn | head -1 | awk '{print $2}' > /work/top.txt
