#!/usr/bin/env bash
set -e
sort -u /work/words.txt > /work/unique.txt
