#!/usr/bin/env bash
set -e
printf '#!/bin/sh\necho run\n' > run.sh && chmod 644 run.sh
echo s3cret > secret.txt && chmod 666 secret.txt
