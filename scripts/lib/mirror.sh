# shellcheck shell=bash
# Sourced by the scripts that fetch from Debian (fetch-libkrunfw,
# fetch-passt, make-base): the mirror this machine's apt is configured
# with, so that a corporate mirror or an apt proxy serves them too.

# debian_mirror prints the Debian archive's base URL, without a trailing
# slash: $LOFTD_DEBIAN_MIRROR when set; else the first Debian archive URL
# in the system's apt sources (deb822 *.sources and one-line lists; not
# security or snapshot archives); else http://deb.debian.org/debian.
debian_mirror() {
  if [ -n "${LOFTD_DEBIAN_MIRROR:-}" ]; then
    echo "${LOFTD_DEBIAN_MIRROR%/}"
    return
  fi
  local m
  m=$({ grep -hsE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -E 's/^[[:space:]]*URIs:[[:space:]]*//' | tr ' ' '\n'
        grep -hsE '^[[:space:]]*deb(-src)?[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
          sed -E 's/^[[:space:]]*deb(-src)?[[:space:]]+(\[[^]]*\][[:space:]]+)?//' | awk '{print $1}'
      } | grep -E '^https?://[^ ]*/debian/?$' | grep -v -e snapshot -e security | head -n 1)
  m=${m:-http://deb.debian.org/debian}
  echo "${m%/}"
}
