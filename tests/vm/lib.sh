# shellcheck shell=bash
# lib.sh - qemu/KVM guests for tests/vm/run.sh: boot, ssh, cleanup.
#
#   vm_init                 per-run temp dir (overlays, sockets, logs), cleanup trap;
#                           then set VM_IMAGE to the image's directory (image.sh)
#   vm_start NAME IDX PEER  boot guest NAME (IDX 1..9) with 3 links to guest PEER
#   vm_wait_ssh NAME SECS   until ssh answers
#   vm_ssh NAME CMD...      run CMD in NAME as root (bounded by VM_SSH_TIMEOUT)
#
# Links: eth0..eth2 of each guest, virtio-net joined by qemu `-netdev dgram` over unix
# datagram sockets in the run's temp dir (one socket per end: the two qemus send each other
# frames, no host device, bridge or address is involved). Control: a fourth NIC on qemu's
# user-mode network with restrict=on (no route out of qemu) and ssh forwarded from
# 127.0.0.1:<a free port>. Guests boot copy-on-write overlays of the cached image.
set -euo pipefail
VM_MEM=${VM_MEM:-1024}
VM_SSH_TIMEOUT=${VM_SSH_TIMEOUT:-120}
declare -gA VM_PID=() VM_PORT=()
declare -ga VM_BG_PIDS=()
VM_TMP=
VM_IMAGE=

vm_log() { echo "[$(date +%T.%3N)] $*"; }
vm_die() { echo "FAIL: $*" >&2; exit 1; }

# vm_accel: qemu's accelerator and CPU options. KVM when the host's kvm module runs ordinary
# guests (kvm_intel, kvm_amd); else TCG. A /dev/kvm from kvm_pvm (a pagetable-based KVM that
# needs no hardware virtualisation) runs only PVM-enabled guest kernels: Debian's stock
# kernel hangs right after decompression there. MLINK_VM_ACCEL=kvm|tcg overrides.
vm_accel() {
  local a=${MLINK_VM_ACCEL:-}
  if [ -z "$a" ]; then
    a=tcg
    if [ -r /dev/kvm ] && [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
      a=kvm
    fi
  fi
  case $a in
    # -arch-capabilities: a nested KVM may refuse to set that MSR (qemu aborts).
    kvm) echo "-accel kvm -cpu host,-arch-capabilities" ;;
    tcg) echo "-accel tcg -cpu max" ;;
    *) vm_die "MLINK_VM_ACCEL=$a: kvm or tcg" ;;
  esac
}

vm_init() {
  VM_ACCEL=$(vm_accel)
  VM_TMP=$(mktemp -d /tmp/mlvm.XXXXXX)   # short: unix socket paths must fit 108 bytes
  trap vm_cleanup EXIT
  trap 'exit 130' INT TERM
}

vm_cleanup() {
  local rc=$? n p i
  trap - EXIT
  for p in "${VM_BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for n in "${!VM_PID[@]}"; do
    [ -S "$VM_TMP/$n.ssh" ] && timeout 5 ssh -o ControlPath="$VM_TMP/$n.ssh" -O exit x >/dev/null 2>&1
    kill "${VM_PID[$n]}" 2>/dev/null || true
  done
  for n in "${!VM_PID[@]}"; do
    p=${VM_PID[$n]}
    for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  for p in "${VM_BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$rc" -ne 0 ] && [ -n "$VM_TMP" ]; then
    for n in "${!VM_PID[@]}"; do
      echo "---- $n: last console lines ($VM_TMP/$n.console)" >&2
      tail -n 15 "$VM_TMP/$n.console" >&2 2>/dev/null || true
    done
  fi
  if [ -n "${MLINK_VM_KEEP:-}" ]; then echo "kept $VM_TMP" >&2; else rm -rf "$VM_TMP"; fi
  exit "$rc"
}

# vm_free_port: a TCP port on 127.0.0.1 that was free a moment ago (qemu binds it; a start
# that loses the race is retried by vm_start).
vm_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

vm_start() {
  local name=$1 idx=$2 peer=$3 i port args=() accel
  read -r -a accel <<<"$VM_ACCEL"
  qemu-img create -q -f qcow2 -F raw -b "$VM_IMAGE/rootfs.raw" "$VM_TMP/$name.qcow2"
  for i in 0 1 2; do
    args+=(-netdev "dgram,id=l$i,local.type=unix,local.path=$VM_TMP/$name-l$i,remote.type=unix,remote.path=$VM_TMP/$peer-l$i"
      -device "virtio-net-pci,netdev=l$i,mac=52:54:00:6d:0$idx:0$i,addr=0x$((3 + i))")
  done
  for _ in 1 2 3; do
    port=$(vm_free_port)
    qemu-system-x86_64 -name "mlvm-$name" -machine q35 "${accel[@]}" -smp 1 -m "$VM_MEM" \
      -nodefaults -no-user-config -display none -no-reboot \
      -serial "file:$VM_TMP/$name.console" \
      -kernel "$VM_IMAGE/vmlinuz" -initrd "$VM_IMAGE/initrd.img" \
      -append "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 systemd.show_status=0 mitigations=off random.trust_cpu=on" \
      -drive "file=$VM_TMP/$name.qcow2,if=virtio,format=qcow2,cache=unsafe,discard=unmap" \
      -device virtio-rng-pci \
      "${args[@]}" \
      -netdev "user,id=m,restrict=on,net=10.99.0.0/24,host=10.99.0.2,hostfwd=tcp:127.0.0.1:$port-10.99.0.15:22" \
      -device "virtio-net-pci,netdev=m,mac=52:54:00:6d:0$idx:09,addr=0x6" \
      >"$VM_TMP/$name.qemu.log" 2>&1 &
    VM_PID[$name]=$!
    VM_PORT[$name]=$port
    sleep 0.5   # qemu binds the port at start: a lost race shows as an exit right away
    kill -0 "${VM_PID[$name]}" 2>/dev/null && return 0
    wait "${VM_PID[$name]}" || true
    grep -q "hostfwd\|Could not set up host forwarding" "$VM_TMP/$name.qemu.log" ||
      vm_die "qemu for $name: $(cat "$VM_TMP/$name.qemu.log")"
  done
  vm_die "qemu for $name: no free port for ssh after 3 tries"
}

vm_ssh_opts() {
  echo -i "$VM_IMAGE/id_ed25519" -p "${VM_PORT[$1]}" -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -o ConnectTimeout=5 \
    -o ControlMaster=auto -o ControlPath="$VM_TMP/$1.ssh" -o ControlPersist=600
}

# vm_ssh NAME CMD...: CMD (one shell string) in NAME, stdin passed; bounded in time.
vm_ssh() {
  local name=$1 opts
  shift
  read -r -a opts <<<"$(vm_ssh_opts "$name")"
  timeout "$VM_SSH_TIMEOUT" ssh "${opts[@]}" root@127.0.0.1 "$@"
}

# vm_put NAME FILE DEST: copy FILE to DEST in NAME.
vm_put() { vm_ssh "$1" "cat > '$3'" <"$2"; }

vm_wait_ssh() {
  local name=$1 secs=$2 deadline
  deadline=$(($(date +%s) + secs))
  until VM_SSH_TIMEOUT=10 vm_ssh "$name" true 2>/dev/null; do
    kill -0 "${VM_PID[$name]}" 2>/dev/null || vm_die "$name: qemu exited: $(cat "$VM_TMP/$name.qemu.log")"
    (($(date +%s) < deadline)) || vm_die "$name: no ssh after $secs s"
    sleep 0.5
  done
}
