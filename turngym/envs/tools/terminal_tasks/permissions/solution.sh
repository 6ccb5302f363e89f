#!/usr/bin/env bash
set -e
chmod u+x /work/run.sh && chmod 600 /work/secret.txt
