#!/usr/bin/env bash
set -e
cd /work && tar --exclude='*.log' -czf backup.tar.gz project
