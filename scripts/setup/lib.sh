# Helpers for setup steps (sourced).
# stamp_ok NAME INPUTS...: true if step NAME already ran with these input files/strings unchanged.
stamp_key() { { for x in "$@"; do if [ -f "$x" ]; then sha256sum "$x"; else echo "$x"; fi; done; } | sha256sum | cut -c1-16; }
stamp_ok() { local name=$1; shift; [ -f "$STAMPS/$name" ] && [ "$(cat "$STAMPS/$name")" = "$(stamp_key "$@")" ]; }
stamp_set() { local name=$1; shift; stamp_key "$@" > "$STAMPS/$name"; }
