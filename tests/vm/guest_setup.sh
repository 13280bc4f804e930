#!/bin/bash
# guest_setup.sh IDX DEB: run inside guest IDX (1 = a, 2 = b) by tests/vm/run.sh, as root.
# Names and addresses the three links as docs/examples/{a,b}.toml expect them (eth0..eth2,
# 10.<i>.0.IDX/24 and fd00:0:0:<i>::IDX/64), installs the package with apt (offline: the
# image holds its Depends) and writes /etc/mlink/mlink.toml from the installed examples.
# The key files are written by the host before mlinkd starts.
set -euo pipefail
idx=$1 deb=$2
node=$(echo "a b" | cut -d' ' -f"$idx")
# eth<i> must be the NIC with MAC 52:54:00:6d:0<idx>:0<i> (tests/vm/lib.sh), i.e. link i
# of the bed: the kernel names them in PCI order (net.ifnames=0); check, never assume.
for i in 0 1 2; do
  mac=52:54:00:6d:0$idx:0$i
  dev=$(ip -o link show | awk -v m="$mac" '$0 ~ m { sub(":$", "", $2); print $2 }')
  [ "$dev" = "eth$i" ] || { echo "guest_setup: link $i ($mac) is '$dev', not eth$i" >&2; exit 1; }
  # IPv6 addresses stay across an admin down/up, as an OS's network configuration keeps them.
  sysctl -qw "net.ipv6.conf.eth$i.keep_addr_on_down=1"
  ip addr add "10.$i.0.$idx/24" dev "eth$i"
  ip -6 addr add "fd00:0:0:$i::$idx/64" dev "eth$i" nodad
  ip link set "eth$i" up
done
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" >/tmp/apt.log 2>&1 ||
  { cat /tmp/apt.log >&2; exit 1; }
test -x /usr/sbin/mlinkd -a -f /lib/systemd/system/mlinkd.service
install -m 600 "/usr/share/doc/mlink/examples/$node.toml" /etc/mlink/mlink.toml
echo "guest_setup: $node: $(dpkg-query -W -f '${Package} ${Version}' mlink) installed, links $(ip -br -4 addr show | awk '/^eth[0-2] / {printf "%s=%s ", $1, $3}')"
