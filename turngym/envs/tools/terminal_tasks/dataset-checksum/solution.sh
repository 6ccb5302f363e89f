#!/usr/bin/env bash
set -e
sha256sum /opt/dataset/records.bin | cut -d' ' -f1 > /work/checksum.txt
