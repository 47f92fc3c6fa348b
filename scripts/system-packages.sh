#!/usr/bin/env bash
# Installs the Debian packages the build or the tests need, when they are missing.
#
#   scripts/system-packages.sh PURPOSE PKG...
#
# As root (or with password-less sudo) it runs apt-get; otherwise it prints the exact command to run and
# exits 1, so `make run` / `make test` stop with a clear message instead of a compiler error 13 s later.
# On a machine without dpkg (not Debian/Ubuntu) it says what is needed and trusts the caller to have it.
set -euo pipefail
purpose="$1"; shift
if ! command -v dpkg >/dev/null 2>&1; then
  echo "== not a Debian system: make sure these are installed for $purpose: $*" >&2
  exit 0
fi
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  run=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  run=(sudo -n)
else
  echo "ERROR: $purpose needs these Debian packages: ${missing[*]}" >&2
  echo "       Run:  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  echo "       then run make again." >&2
  exit 1
fi
echo "== apt-get install ${missing[*]} (needed for $purpose)"
export DEBIAN_FRONTEND=noninteractive
# The package lists are refreshed unless another install did it within the hour (make install, then make test).
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -60 2>/dev/null | head -1)" ]; then
  "${run[@]}" apt-get update -qq
fi
"${run[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
