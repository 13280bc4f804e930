#!/usr/bin/env bash
# Installs everything mlink needs to build and test on Debian bookworm.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  build-essential cmake pkg-config clang llvm clang-format
  libbpf-dev bpftool libelf-dev zlib1g-dev
  libmnl-dev libsystemd-dev libfmt-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev
  libsodium-dev libssl-dev doctest-dev prometheus-cpp-dev
  iproute2 iperf3 iputils-ping tcpdump nftables python3 util-linux procps
  frr         # bfdd, the peer of tests/e2e/test_frr_interop.sh
  prometheus  # promtool, which checks /metrics in tests/e2e/test_metrics.sh
  systemd     # systemd-analyze, which checks dist/systemd/*.service
  libcap2-bin libseccomp2  # capsh, seccomp: tests/e2e/test_systemd_unit.sh runs mlinkd in the unit's sandbox
  dpkg-dev lintian man-db groff-base mandoc  # the .deb (cpack, dpkg-shlibdeps) and its checks: tests/e2e/test_package.sh
  vagrant     # `vagrant validate` of the Vagrantfile: tests/e2e/test_vagrantfile.sh
)
# Not here: qemu-system-x86 qemu-utils debootstrap, for tests/vm/run.sh (two VMs on Debian's
# 6.1), which is run by hand, not by CI (docs/OPERATIONS.md, "Two VMs on Debian 12").
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "ci/install-deps: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "ci/install-deps: all packages present"
fi
