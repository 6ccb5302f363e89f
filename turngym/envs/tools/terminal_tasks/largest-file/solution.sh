#!/usr/bin/env bash
set -e
cd /work/tree && find . -type f -printf '%s %P\n' | sort -n | tail -1 | cut -d' ' -f2- > /work/largest.txt
