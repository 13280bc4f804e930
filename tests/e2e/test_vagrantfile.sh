#!/usr/bin/env bash
# The Vagrantfile (two VMs a and b, three private networks, mlink from the .deb) is valid:
# `vagrant validate` (provider options ignored: no VirtualBox or libvirt here), run on a copy
# in a temp dir with its own VAGRANT_HOME, so nothing is written beside the repository or in
# ~/.vagrant.d. The bed it describes is what tests/vm/run.sh runs in qemu.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)

skip() {
  if [[ ${MLINK_REQUIRE_PRIVILEGED:-} == 1 ]]; then echo "FAIL: $*" >&2; exit 1; fi
  echo "SKIP: $*" >&2
  exit 77
}
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v vagrant >/dev/null || skip "needs vagrant (ci/install-deps.sh installs it)"

TMP=$(mktemp -d /tmp/mlvagrant.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cp "$SRC/Vagrantfile" "$TMP/"
out=$(cd "$TMP" && VAGRANT_HOME=$TMP/home VAGRANT_CHECKPOINT_DISABLE=1 NO_COLOR=1 \
  timeout 120 vagrant validate --ignore-provider 2>&1) || fail "vagrant validate: $out"
grep -q "validated successfully" <<<"$out" || fail "vagrant validate: $out"
for m in a b; do grep -q "^==> $m:" <<<"$out" || fail "no machine $m in the Vagrantfile: $out"; done
# The keys it makes on first load: keygen's format, mode 0600.
grep -Eqx '1 [0-9a-f]{40}' "$TMP/.vagrant/mlink-bfd.key" || fail "bfd key: $(cat "$TMP/.vagrant/mlink-bfd.key")"
grep -Eqx '1 [0-9a-f]{64}' "$TMP/.vagrant/mlink-topo.key" || fail "topo key"
[[ $(stat -c %a "$TMP/.vagrant/mlink-bfd.key") == 600 ]] || fail "bfd key mode $(stat -c %a "$TMP/.vagrant/mlink-bfd.key")"
# The provisioning script (a heredoc in the Vagrantfile) parses as bash.
sed -n "/<<~'SHELL'/,/^ *SHELL\$/p" "$SRC/Vagrantfile" | sed '1d;$d' >"$TMP/provision.sh"
[ -s "$TMP/provision.sh" ] || fail "no provisioning script found in the Vagrantfile"
bash -n "$TMP/provision.sh" || fail "the provisioning script does not parse"
echo "PASS: vagrant validate (machines a and b)"
