#!/usr/bin/env bash
# Installs Suricata 7 from Debian bookworm-backports (bookworm itself only has 6.x, whose EVE
# output differs). Idempotent and non-interactive: safe to call from CI on every run.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

want_major=7
have_version() { command -v suricata >/dev/null 2>&1 && suricata -V 2>/dev/null | sed -n 's/.*version \([0-9][0-9.]*\).*/\1/p' | head -n1; }

v=$(have_version || true)
if [ -n "$v" ] && [ "${v%%.*}" -ge "$want_major" ]; then
  echo "suricata $v already installed"
  exit 0
fi

# The backports source, only if no configured source already lists the suite.
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/bookworm-backports.list
  echo "added /etc/apt/sources.list.d/bookworm-backports.list"
fi

# The package's postinst may try to start the service; a policy-rc.d keeps it from doing so
# (tests run their own Suricata processes), and is removed again only if we created it.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT

apt-get update -qq
apt-get install -y -qq --no-install-recommends -t bookworm-backports suricata >/dev/null

v=$(have_version || true)
if [ -z "$v" ] || [ "${v%%.*}" -lt "$want_major" ]; then
  echo "suricata install failed or too old (got '${v:-none}')" >&2
  exit 1
fi
echo "suricata $v installed"
