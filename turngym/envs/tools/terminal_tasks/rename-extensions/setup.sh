#!/usr/bin/env bash
set -e
mkdir -p photos
for n in cat dog "beach day"; do echo "$n" > "photos/$n.jpeg"; done
echo old > photos/already.jpg
echo hi > photos/notes.txt
