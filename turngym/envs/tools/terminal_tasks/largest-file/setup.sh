#!/usr/bin/env bash
set -e
mkdir -p tree/src/lib/data tree/docs tree/build
head -c 1000 /dev/zero > tree/docs/manual.txt
head -c 5000 /dev/zero > tree/build/out.o
head -c 9000 /dev/zero > tree/src/lib/data/blob.dat
head -c 8999 /dev/zero > tree/src/main.c
