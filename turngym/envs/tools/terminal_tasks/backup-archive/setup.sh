#!/usr/bin/env bash
set -e
mkdir -p project/src project/logs
echo 'print(1)' > project/src/app.py
echo readme > project/README
echo noise > project/logs/run.log
echo noise > project/debug.log
