#!/usr/bin/env bash
set -e
cd /work/photos && for f in *.jpeg; do mv -- "$f" "${f%.jpeg}.jpg"; done
