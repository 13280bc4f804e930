#!/usr/bin/env python3
"""TCP counters of one network namespace between two snapshots, for the goodput bench.

  tcp_counters.py BEFORE AFTER [RX_BEFORE RX_AFTER]
      BEFORE/AFTER: `cat /proc/net/snmp /proc/net/netstat` taken in the sender's namespace
      (the MIBs are per netns), RX_*: the same in the receiver's
  tcp_counters.py --all BEFORE AFTER   every counter that changed, one per line
Prints one line of key=value: the sender's view of reordering and loss over the run.
  retrans_segs   TcpRetransSegs: segments sent again
  reorder        TCPSACKReorder + TCPTSReorder + TCPRenoReorder: reorderings TCP detected
  dsack          TCPDSACKRecvSegs: segments the peer reported receiving twice, i.e.
                 retransmits that were not needed (the original was only late: reordering)
  host_queue     TCPSpuriousRtxHostQueues: retransmits TCP held back because the original was
                 still queued in this host (a link's qdisc): what it thought lost was only late
  undo           TCPFullUndo + TCPPartialUndo + TCPDSACKUndo + TCPLossUndo: congestion-window
                 reductions taken back once TCP saw the loss was reordering
  lost_retrans   TCPLostRetransmit: a retransmit itself lost (real loss)
  rx_drops       (receiver) segments the receiving TCP threw away: out-of-order queue pruned
                 or dropped, receive queue or backlog full
Counters missing from this kernel count 0.
"""
import sys

GROUPS = {
    "retrans_segs": ["Tcp:RetransSegs"],
    "reorder": ["TcpExt:TCPSACKReorder", "TcpExt:TCPTSReorder", "TcpExt:TCPRenoReorder"],
    "dsack": ["TcpExt:TCPDSACKRecvSegs"],
    "host_queue": ["TcpExt:TCPSpuriousRtxHostQueues"],
    "undo": ["TcpExt:TCPFullUndo", "TcpExt:TCPPartialUndo", "TcpExt:TCPDSACKUndo",
             "TcpExt:TCPLossUndo"],
    "lost_retrans": ["TcpExt:TCPLostRetransmit"],
}
RX_GROUPS = {
    "rx_drops": ["TcpExt:OfoPruned", "TcpExt:TCPOFODrop", "TcpExt:TCPRcvQDrop", "TcpExt:RcvPruned",
                 "TcpExt:TCPBacklogDrop", "TcpExt:TCPZeroWindowDrop"],
}


def parse(path):
    """{"Group:Name": value} from /proc/net/snmp and /proc/net/netstat text (header/value pairs)."""
    out = {}
    lines = open(path).read().splitlines()
    for head, vals in zip(lines[::2], lines[1::2]):
        group, names = head.split(":", 1)
        vgroup, values = vals.split(":", 1)
        if group != vgroup:
            sys.exit(f"{path}: header {group} followed by {vgroup}")
        for n, v in zip(names.split(), values.split()):
            out[f"{group}:{n}"] = int(v)
    return out


def main():
    args = sys.argv[1:]
    if args[:1] == ["--all"] and len(args) == 3:
        before, after = parse(args[1]), parse(args[2])
        for k, v in after.items():
            if v != before.get(k, 0):
                print(f"{k} {v - before.get(k, 0)}")
        return
    if len(args) not in (2, 4):
        sys.exit(__doc__)
    out = []
    for (b, a), groups in zip(zip(args[::2], args[1::2]), (GROUPS, RX_GROUPS)):
        before, after = parse(b), parse(a)
        if "Tcp:RetransSegs" not in after:
            sys.exit(f"{a}: no Tcp:RetransSegs (not a snapshot of /proc/net/snmp)")
        diff = lambda k: after.get(k, 0) - before.get(k, 0)
        out += [f"{name}={sum(diff(k) for k in keys)}" for name, keys in groups.items()]
    print(" ".join(out))


if __name__ == "__main__":
    main()
