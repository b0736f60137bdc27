#!/usr/bin/env bash
# Install the Debian packages whose binaries the tests run (tools/system-deps.txt); `make install`
# calls this. Nothing to do, and quick, when every binary is already there. Installing needs root
# and apt-get; where that is not possible it says so loudly and exits 0, so the Python install goes
# on and the tests that need a missing binary fail naming it (they never skip).
set -euo pipefail

LIST="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/system-deps.txt"
SEARCH_PATH="$PATH:/usr/sbin:/sbin"  # nginx lives in /usr/sbin, off a normal user's PATH

missing_binaries() {
  while read -r binary package _; do
    [[ -z "$binary" || "$binary" == \#* ]] && continue
    PATH="$SEARCH_PATH" command -v "$binary" >/dev/null || echo "$binary:$package"
  done <"$LIST"
}

shout() {
  {
    echo
    echo "!!!!!! system-deps: $*"
    echo "!!!!!! The tests that run these binaries will FAIL until they are installed."
    echo
  } >&2
}

missing="$(missing_binaries)"
[[ -z "$missing" ]] && exit 0
packages="$(cut -d: -f2 <<<"$missing" | sort -u | paste -sd' ' -)"
binaries="$(cut -d: -f1 <<<"$missing" | paste -sd' ' -)"

if [[ "$(id -u)" -ne 0 ]]; then
  shout "missing ${binaries}; installing needs root: sudo $0 (apt-get install ${packages})"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  shout "missing ${binaries}; no apt-get here: install what provides them (Debian: ${packages})"
  exit 0
fi

# Installing a package with a service starts it (invoke-rc.d in the postinst): in a container that is
# a real nginx on :80 and Prometheus on :9090. A policy-rc.d answering 101 ("action forbidden") is
# Debian's switch for that; ours exists only while we install, and one already there is left alone.
policy=/usr/sbin/policy-rc.d
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\n# tools/system-deps.sh: no service starts while it installs packages.\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi

echo "system-deps: installing ${packages} (for ${binaries})"
apt=(apt-get -q -o DPkg::Lock::Timeout=300)
export DEBIAN_FRONTEND=noninteractive
read -ra package_list <<<"$packages"
if ! { "${apt[@]}" update -qq && "${apt[@]}" install -y -qq --no-install-recommends "${package_list[@]}" >/dev/null; }; then
  shout "apt-get could not install ${packages}"
  exit 0
fi
still_missing="$(missing_binaries)"
if [[ -n "$still_missing" ]]; then
  shout "still missing after apt-get install: $(cut -d: -f1 <<<"$still_missing" | paste -sd' ' -)"
fi
