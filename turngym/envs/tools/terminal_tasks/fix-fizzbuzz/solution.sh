#!/usr/bin/env bash
set -e
sed -i 's/if i % 3 == 0:/if i % 15 == 0:\n        print("FizzBuzz")\n    elif i % 3 == 0:/' /work/fizzbuzz.py
