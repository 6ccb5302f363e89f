# Helpers for setup steps (sourced).
# stamp_ok NAME INPUTS...: true if step NAME already ran with these input files/strings unchanged.
stamp_key() { { for x in "$@"; do if [ -f "$x" ]; then sha256sum "$x"; else echo "$x"; fi; done; } | sha256sum | cut -c1-16; }
stamp_ok() { local name=$1; shift; [ -f "$STAMPS/$name" ] && [ "$(cat "$STAMPS/$name")" = "$(stamp_key "$@")" ]; }
stamp_set() { local name=$1; shift; stamp_key "$@" > "$STAMPS/$name"; }
# debian_mirror: the Debian archive URI apt is configured with, read from one-line sources
# (/etc/apt/sources.list, sources.list.d/*.list) and deb822 ones (sources.list.d/*.sources);
# either kind of file may be missing. Never fails: falls back to the default mirror.
debian_mirror() {
  local files=() f uri
  local etc=${APT_ETC:-/etc/apt}
  for f in "$etc"/sources.list "$etc"/sources.list.d/*.list "$etc"/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  if [ ${#files[@]} -gt 0 ]; then
    uri=$(sed -e 's/#.*//' "${files[@]}" | grep -oE 'https?://[^ ]+/debian/?([[:space:]]|$)' | tr -d ' \t' | head -n1 || true)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}
