#!/usr/bin/env bash
set -e
python3 -c "
import json
users = sorted(json.load(open('/work/users.json')), key=lambda u: u['name'])
open('/work/users.csv', 'w').write('name,email\n' + ''.join(f\"{u['name']},{u['email']}\n\" for u in users))
"
