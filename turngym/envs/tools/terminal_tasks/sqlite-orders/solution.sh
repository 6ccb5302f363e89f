#!/usr/bin/env bash
set -e
python3 -c "import sqlite3; print(sqlite3.connect('/work/shop.db').execute('select count(*) from orders where amount > 100').fetchone()[0])" > /work/answer.txt
