#!/usr/bin/env bash
set -e
cat /work/logs/*.log | grep -c 'ERROR' > /work/answer.txt
