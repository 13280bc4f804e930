#!/usr/bin/env bash
# Installs what mlink needs on Debian bookworm (as root).
#   ci/install-deps.sh [--check] [demo|all]
# demo: building the agent and running the network-namespace bed (ci/demo.sh);
# all (the default): everything the test suite needs as well (ci/test.sh).
# --check installs nothing: exit 0 when every package is there, 1 (naming the
# missing ones) otherwise. ci/demo.sh and ci/test.sh call this script only
# when --check fails, so a second run does not wait for apt.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
check=0
[ "${1:-}" != --check ] || { check=1; shift; }
group=${1:-all}
DEMO=(
  build-essential cmake pkg-config clang llvm
  libbpf-dev bpftool libelf-dev zlib1g-dev
  libmnl-dev libsystemd-dev libfmt-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev
  libsodium-dev libssl-dev doctest-dev prometheus-cpp-dev
  iproute2 iperf3 python3 util-linux procps
)
TESTS=(
  clang-format iputils-ping tcpdump nftables
  frr         # bfdd, the peer of tests/e2e/test_frr_interop.sh
  prometheus  # promtool, which checks /metrics in tests/e2e/test_metrics.sh
  tshark      # runs dist/wireshark/mlink.lua in tests/e2e/test_dissector.sh (text2pcap comes with it)
  systemd     # systemd-analyze, which checks dist/systemd/*.service
  libcap2-bin libseccomp2  # capsh, seccomp: tests/e2e/test_systemd_unit.sh runs mlinkd in the unit's sandbox
  dpkg-dev lintian man-db groff-base mandoc  # the .deb (cpack, dpkg-shlibdeps) and its checks: tests/e2e/test_package.sh
  python3-matplotlib  # the benchmark plots (bench/plots.py, bench/scale_report.py): tests/bench/test_plots.sh
  vagrant     # `vagrant validate` of the Vagrantfile: tests/e2e/test_vagrantfile.sh
)
# Not here: qemu-system-x86 qemu-utils debootstrap, for tests/vm/run.sh (two VMs on Debian's
# 6.1), which is run by hand, not by CI (docs/OPERATIONS.md, "Two VMs on Debian 12").
case $group in
  demo) PKGS=("${DEMO[@]}") ;;
  all) PKGS=("${DEMO[@]}" "${TESTS[@]}") ;;
  *) echo "usage: $0 [--check] [demo|all]" >&2; exit 2 ;;
esac
# One dpkg-query for the whole list (a package it does not know is simply not printed);
# a package whose triggers are still pending (man-db's, often) is installed and usable.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PKGS[@]}" 2>/dev/null |
  awk '$2 ~ /^(installed|triggers-pending|triggers-awaited)$/ { print $1 }') || true
missing=()
for p in "${PKGS[@]}"; do
  grep -qxF "$p" <<<"$installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "ci/install-deps: all packages present ($group)"
  exit 0
fi
if ((check)); then
  echo "ci/install-deps: missing ($group): ${missing[*]}"
  exit 1
fi
[ "$(id -u)" -eq 0 ] || { echo "ci/install-deps: run as root to install ${missing[*]}" >&2; exit 1; }
echo "ci/install-deps: installing ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
