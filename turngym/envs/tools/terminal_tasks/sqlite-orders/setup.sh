#!/usr/bin/env bash
set -e
python3 - <<'EOF'
import sqlite3
db = sqlite3.connect("shop.db")
db.execute("create table orders(id integer primary key, customer text, amount real)")
rows = [("ann", 50), ("bob", 150.5), ("cy", 100), ("dee", 101), ("eve", 20), ("fay", 999), ("gus", 300)]
db.executemany("insert into orders(customer, amount) values (?, ?)", rows)
db.commit()
EOF
