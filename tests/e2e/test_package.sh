#!/usr/bin/env bash
# The Debian package (issue 14). From the build dir: `cpack -G DEB`, then
#   lintian: no error; every warning is in dist/lintian-allowed.txt with its reason;
#   the file list: binaries, units (and no link that would enable them), man pages, completion,
#     docs, examples, an empty /etc/mlink; the control fields (Depends from dpkg-shlibdeps);
#   unpacked into a throwaway root (dpkg-deb -x, never dpkg -i): the binaries run, keygen's keys
#     load in `mlinkd --check` (in a private network namespace), --check names a missing config,
#     `man -l` renders each page with no warning, the completion sources and completes, and
#     `systemd-analyze verify` accepts the units with the paths inside that root.
# Nothing is installed into the real system.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${MLINK_BUILD_DIR:-$SRC/build}
ALLOWED=$SRC/dist/lintian-allowed.txt

skip() {
  if [[ ${MLINK_REQUIRE_PRIVILEGED:-} == 1 ]]; then echo "FAIL: $*" >&2; exit 1; fi
  echo "SKIP: $*" >&2
  exit 77
}
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "  $*: ok"; }

for tool in cpack dpkg-deb dpkg-shlibdeps lintian man systemd-analyze unshare ip; do
  command -v "$tool" >/dev/null || skip "needs $tool (ci/install-deps.sh installs it)"
done
[[ -f $BUILD/CPackConfig.cmake && -x $BUILD/mlinkd && -x $BUILD/mlinkctl ]] ||
  fail "no build in $BUILD (MLINK_BUILD_DIR)"

TMP=$(mktemp -d /tmp/mlpkg.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# ---- build ------------------------------------------------------------------
# Everything cpack writes (its staging tree too) goes to $TMP, not the build dir.
# What the package installs (no-op when built); cpack itself builds nothing.
cmake --build "$BUILD" --target mlinkd mlinkctl mlink_dist_files >/dev/null
# cpack stages under DESTDIR (CPACK_SET_DESTDIR): the absolute destinations must not land here.
real=(/lib/systemd/system/mlinkd.service /etc/mlink /usr/sbin/mlinkd)
before=$(ls -d "${real[@]}" 2>/dev/null || true)
(cd "$BUILD" && cpack -G DEB -B "$TMP/out" >"$TMP/cpack.log" 2>&1) ||
  fail "cpack: $(cat "$TMP/cpack.log")"
[[ $(ls -d "${real[@]}" 2>/dev/null || true) == "$before" ]] || fail "cpack wrote into the real system"
debs=("$TMP"/out/mlink_*.deb)
[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || fail "no single mlink_*.deb in $TMP/out"
deb=${debs[0]}
ok "cpack -G DEB: $(basename "$deb")"

# ---- control fields -----------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
version=$("$BUILD/mlinkd" --version)
[[ $(field Package) == mlink ]] || fail "Package: $(field Package)"
[[ $(field Version) == "$version-"* ]] || fail "Version: $(field Version), mlinkd says $version"
[[ $(field Section) == net ]] || fail "Section: $(field Section)"
[[ $(field Architecture) == "$(dpkg --print-architecture)" ]] || fail "Architecture: $(field Architecture)"
for lib in libc6 libbpf1 libsodium23 libsystemd0 libmnl0; do
  grep -qw "$lib" <<<"$(field Depends)" || fail "Depends: lacks $lib: $(field Depends)"
done
dpkg-deb -e "$deb" "$TMP/control"
for script in preinst postinst prerm postrm; do
  [[ ! -e $TMP/control/$script ]] || fail "maintainer script $script: the units must not be enabled"
done
ok "control: $(field Package) $(field Version) $(field Architecture); Depends: $(field Depends)"

# ---- file list ---------------------------------------------------------------
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' | sort >"$TMP/files"
expect=(
  /usr/sbin/mlinkd /usr/sbin/mlinkctl
  /lib/systemd/system/mlinkd.service /lib/systemd/system/mlinkd-cleanup.service
  /usr/share/man/man8/mlinkd.8.gz /usr/share/man/man8/mlinkctl.8.gz
  /usr/share/man/man5/mlink.toml.5.gz
  /usr/share/bash-completion/completions/mlinkctl
  /usr/share/doc/mlink/copyright /usr/share/doc/mlink/changelog.Debian.gz
  /usr/share/doc/mlink/README.md /usr/share/doc/mlink/OPERATIONS.md
  /usr/share/doc/mlink/examples/a.toml /usr/share/doc/mlink/examples/b.toml
  /usr/share/doc/mlink/examples/static.toml
  /usr/share/mlink/wireshark/mlink.lua /usr/share/mlink/wireshark/mlink_hmac.lua
  /usr/share/mlink/grafana/mlink.json
  /etc/mlink
)
for f in "${expect[@]}"; do grep -qx "$f" "$TMP/files" || fail "$f is not in the package"; done
if grep -E '^/etc/mlink/.|^/etc/systemd|^/usr/local|\.bpf\.o$' "$TMP/files"; then
  fail "the package holds a config, an enabled unit, /usr/local or a BPF object (above)"
fi
ok "file list ($(wc -l <"$TMP/files") entries)"

# ---- lintian -------------------------------------------------------------------
# "X: mlink[ type]: tag [info]"; E fails; W fails unless allowed; I/P/N are shown.
lintian --display-level '>=info' --tag-display-limit 0 "$deb" >"$TMP/lintian" 2>&1 || true
allowed=$(sed 's/#.*//' "$ALLOWED" | awk 'NF {print $1}')
bad=0
while read -r level _ rest; do
  tag=${rest%% *}
  case $level in
    E:) echo "  lintian error: $tag ${rest#"$tag"}"; bad=1 ;;
    W:) if grep -qx "$tag" <<<"$allowed"; then echo "  lintian warning (allowed): $rest"
        else echo "  lintian warning: $rest"; bad=1; fi ;;
    *) echo "  lintian $level $rest" ;;
  esac
done < <(grep -E '^[EWIPNX]: ' "$TMP/lintian" | sed -E 's/^([A-Z]:) mlink( [a-z]+)?: /\1 mlink: /')
((bad == 0)) || fail "lintian (errors, or warnings not in dist/lintian-allowed.txt): $(cat "$TMP/lintian")"
ok "lintian"

# ---- unpacked into a throwaway root --------------------------------------------
ROOT=$TMP/root
dpkg-deb -x "$deb" "$ROOT"
[[ $("$ROOT/usr/sbin/mlinkd" --version) == "$version" ]] || fail "mlinkd --version"
"$ROOT/usr/sbin/mlinkd" --help | grep -- --cleanup >/dev/null || fail "mlinkd --help"
"$ROOT/usr/sbin/mlinkctl" --help | grep keygen >/dev/null || fail "mlinkctl --help"
ok "mlinkd --version / --help, mlinkctl --help"

# The unit's ExecStartPre= without a config: exit 2, naming the file.
rc=0
err=$("$ROOT/usr/sbin/mlinkd" --config "$ROOT/etc/mlink/mlink.toml" --check 2>&1) || rc=$?
[[ $rc -eq 2 && $err == *"$ROOT/etc/mlink/mlink.toml"*"No such file"* ]] ||
  fail "--check without a config: exit $rc, $err"
ok "--check without a config: $err"

# keygen: mode 0600 under umask 077, and the keys load. --check only reads (netlink dumps),
# and runs in a private network namespace with lo as the link anyway.
(umask 077
 "$ROOT/usr/sbin/mlinkctl" keygen bfd >"$TMP/bfd.key"
 "$ROOT/usr/sbin/mlinkctl" keygen topo --id 7 >"$TMP/topo.key")
grep -Eqx '1 [0-9a-f]{40}' "$TMP/bfd.key" || fail "keygen bfd: $(cat "$TMP/bfd.key")"
grep -Eqx '7 [0-9a-f]{64}' "$TMP/topo.key" || fail "keygen topo: $(cat "$TMP/topo.key")"
[[ $(stat -c %a "$TMP/bfd.key") == 600 ]] || fail "umask 077 gave mode $(stat -c %a "$TMP/bfd.key")"
rc=0
"$ROOT/usr/sbin/mlinkctl" keygen bfd --id 256 >/dev/null 2>&1 || rc=$?
[[ $rc -eq 1 ]] || fail "keygen bfd --id 256: exit $rc"
cat >"$TMP/mlink.toml" <<TOML
[node]
id = "pkgtest"
ml_address = ["10.88.0.1/16"]
[bfd]
key_file = "bfd.key"
[discovery]
key_file = "topo.key"
[[link]]
device = "lo"
TOML
# shellcheck disable=SC2016  # $1, $2: the inner shell's arguments
out=$(unshare --net sh -c 'ip link set lo up && "$1" --config "$2" --check' sh \
  "$ROOT/usr/sbin/mlinkd" "$TMP/mlink.toml" 2>&1) || fail "mlinkd --check with keygen's keys: $out"
ok "keygen bfd / topo: keys load (mlinkd --check)"

# Man pages: man -l with groff's warnings (-ww), and mandoc's lint where installed.
for page in man8/mlinkd.8 man8/mlinkctl.8 man5/mlink.toml.5; do
  f=$ROOT/usr/share/man/$page.gz
  warn=$(MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null) || fail "man -l $page: $warn"
  [[ -z $warn ]] || fail "man -l $page warns: $warn"
  MANWIDTH=80 man -l "$f" 2>/dev/null | grep -q "SEE ALSO" || fail "man -l $page renders nothing"
  if command -v mandoc >/dev/null; then
    lint=$(zcat "$f" | mandoc -Tlint -W warning 2>&1) || fail "mandoc -Tlint $page: $lint"
  fi
done
ok "man -l (3 pages)"

# Completion: sources in a plain bash and completes commands and keywords.
comp=$ROOT/usr/share/bash-completion/completions/mlinkctl
got=$(bash -c '
  source "$1" && complete -p mlinkctl >/dev/null || exit 1
  c() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _mlinkctl; echo "${COMPREPLY[*]}"; }
  c mlinkctl sh; c mlinkctl show p; c mlinkctl keygen ""; c mlinkctl link set lo ""
' bash "$comp") || fail "the completion does not source"
[[ $got == $'show\npeers\nbfd topo\nweight backup drain undrain' ]] || fail "completion: $got"
ok "bash completion"

# Units: verified with the unpacked root's mlinkd and man pages,
# their Documentation= exists there, and nothing enables them.
units=("$ROOT"/lib/systemd/system/mlinkd.service "$ROOT"/lib/systemd/system/mlinkd-cleanup.service)
# --root= would want a whole OS in the root (sysinit.target, /bin/kill), so the units are
# copied with their mlinkd pointed into the root, and man: links looked up there.
mkdir "$TMP/units"
for u in "${units[@]}"; do sed "s|/usr/sbin/mlinkd|$ROOT/usr/sbin/mlinkd|g" "$u" >"$TMP/units/${u##*/}"; done
out=$(MANPATH=$ROOT/usr/share/man SYSTEMD_LOG_LEVEL=warning systemd-analyze verify \
  "$TMP/units/mlinkd.service" "$TMP/units/mlinkd-cleanup.service" 2>&1) ||
  fail "systemd-analyze verify: $out"
if grep -E "mlinkd(-cleanup)?\.service|mlinkd" <<<"$out"; then fail "the units have problems: $out"; fi
for u in "${units[@]}"; do
  # shellcheck disable=SC2013  # Documentation= holds space-separated URIs
  for doc in $(sed -n 's/^Documentation=//p' "$u"); do
    case $doc in
      file:*) [[ -f $ROOT${doc#file:} ]] || fail "$(basename "$u"): $doc is not in the package" ;;
      man:*) page=${doc#man:}; name=${page%(*}; sec=${page#*(}; sec=${sec%)}
             [[ -f $ROOT/usr/share/man/man$sec/$name.$sec.gz ]] || fail "$(basename "$u"): no $doc" ;;
    esac
  done
done
ok "systemd-analyze verify (both units), Documentation= present"
echo "PASS: $(basename "$deb")"
