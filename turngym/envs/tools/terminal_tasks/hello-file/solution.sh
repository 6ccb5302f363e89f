#!/usr/bin/env bash
set -e
echo 'Hello, world!' > /work/hello.txt
