/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * mlink_abi.h - every struct, enum and constant shared by the BPF datapath and
 * the C++ control plane. One copy, compiled by both clang -target bpf and the
 * C++ compiler; the _Static_asserts at the end make both agree on the layout.
 * Maps are BTF-typed with these structs so `bpftool map dump` prints names.
 */
#ifndef MLINK_ABI_H
#define MLINK_ABI_H

#include <linux/types.h>

/*
 * Layout version of everything below, kept in the pinned map ml_abi: an agent
 * adopts a datapath left by one that died only when the version and every
 * map's shape match (control/datapath/bpf_datapath.cpp). Bump it whenever a
 * struct, a map or the meaning of a field changes.
 *   1: 8 slots per peer
 *   2: 16 slots per peer; ml_abi; map sizes set at load from the config
 *   3: ml_bfd_peers; the guard's ingress counters; the socket filters
 *   4: ml_peer.spread and flowlet_gap_us; ml_flowlets
 *   5: group echo: ml_bfd_peers' value is the session's ml_echo_seen slot + 1;
 *      ml_echo_tx, ml_echo_seen, ml_link_addrs
 *   6: ml_flowlets is an array indexed by ml_flowlet_index();
 *      ml_peer.socket_queue_limit and its drop reason
 *   7: ML_ECHO_RING 16 (echo bursts, control/bfd/echo_burst.h)
 */
#define ML_ABI_VERSION 7

#define ML_MAX_SLOTS 16  /* links per peer; a power of two (slot &= ML_MAX_SLOTS - 1) */
#define ML_BUCKETS 256   /* power of two: bucket = hash & (ML_BUCKETS - 1) */
#define ML_SLOT_NONE 0xff /* bucket owned by no link: packets dropped */

/*
 * The peer maps are sized at load (bpf_map__set_max_entries) from [node]
 * max_peers; the object file carries the default. Peer ids are
 * 0..max_peers-1; ml_peers holds two entries per peer (an IPv4 and an IPv6
 * ML address).
 */
#define ML_DEFAULT_PEERS 1024
#define ML_PEERS_LIMIT 16384 /* the largest max_peers: discovery's node table holds as many */
#define ML_MAX_PEERS ML_DEFAULT_PEERS /* old name of the default; not a limit any more */
/* Local ML addresses: the config allows one per family, so 16 is headroom. */
#define ML_MAX_LOCALS 16

/* BFD (RFC 5881 §4): control packets to 3784; ml_ingress reflects UDP
 * datagrams to 3785 that arrive with TTL / hop limit 255 from a source port
 * other than 3785, from a BFD peer of that link (ml_bfd_peers). */
#define ML_BFD_CONTROL_PORT 3784
#define ML_BFD_ECHO_PORT 3785

/*
 * Key of ml_bfd_peers: one BFD session's link and addresses. Only these
 * (link, our address, peer address) triples get echoes reflected and reach
 * the agent's BFD sockets (docs/ARCHITECTURE.md, "The guard"). Value: 0
 * (reserved).
 */
struct ml_bfd_key {
	__u32 ifindex;
	__u8 family; /* AF_INET or AF_INET6 */
	__u8 pad[3];
	__u8 local[16];  /* our address on the link; IPv4 in [0..3] */
	__u8 remote[16]; /* the peer's */
};

/*
 * Group echo (docs/ARCHITECTURE.md, "Group echo"): one echo per link socket
 * (link, local address) and interval, sent to the all-nodes group (224.0.0.1,
 * ff02::1) instead of one per peer. Every peer's ml_ingress reflects it by
 * unicast; ml_ingress on the sender checks each reflection against
 * ml_echo_tx, records it in the session's ml_echo_seen slot and drops it, so
 * the agent sends one packet per link and interval and receives none.
 *
 * Payload (ML_ECHO_LEN bytes, network byte order except the nonce, which is
 * compared as the sender wrote it):
 *   0 magic "MLEG" | 4 socket (index into ml_echo_tx) | 8 seq | 12 sent_us
 *   (u64, the sender's CLOCK_MONOTONIC) | 20 nonce (8 random bytes) | 28 zero
 */
#define ML_ECHO_GROUP_MAGIC 0x4d4c4547U /* "MLEG" */
#define ML_ECHO_LEN 32
#define ML_ECHO_SOCKETS 64 /* link sockets with group echo (ml_echo_tx entries) */
/* Group echoes in flight a reflection may answer: 16 keep a burst's echoes (4x the rate)
 * answerable for as long as 4 plain ones, 120 ms at 30 ms. */
#define ML_ECHO_RING 16
#define ML_ECHO_GROUP_V4 0xe0000001U /* 224.0.0.1, host order */

struct ml_echo_sent {
	__u32 seq;
	__u32 pad;
	__u64 nonce;
};

/* Value of ml_echo_tx (array, mmapable), by socket: the agent's last group
 * echoes, ring[seq % ML_ECHO_RING]. ifindex 0: the socket sends none. */
struct ml_echo_tx {
	__u32 ifindex;
	__u32 pad;
	struct ml_echo_sent ring[ML_ECHO_RING];
};

/* Value of ml_echo_seen (array, mmapable), by session slot: the reflections
 * of our group echoes that came back, written by ml_ingress. */
struct ml_echo_seen {
	__u64 last_ns; /* bpf_ktime_get_ns() of the newest */
	__u64 bits;    /* bit i: echo seq - i came back */
	__u64 count;   /* reflections accepted */
	__u32 seq;     /* the newest seq that came back */
	__u32 rtt_us;  /* its round trip */
};

/* Key of ml_link_addrs: value struct ml_addr, our address on the link that
 * group reflections leave from (the one our BFD sessions there use). */
struct ml_link_key {
	__u32 ifindex;
	__u8 family;
	__u8 pad[3];
};

/* Both ends must use the same seed, or the symmetric hash picks different
 * links for the two directions of a flow. */
#define ML_HASH_SEED 0x6d6c6e6bU /* "mlnk" */

enum ml_hash_policy {
	ML_HASH_L34 = 0,    /* symmetric hash of addresses, protocol, ports */
	ML_HASH_SOCKET = 1, /* skb hash: TCP re-draws it on RTO */
};

/*
 * How a peer's traffic is spread over its links. FLOW: a flow's bucket is its
 * hash, so it stays on one link. FLOWLET: a flow keeps its bucket while its
 * packets come closer together than flowlet_gap_us, and a burst after a longer
 * pause (a new flowlet) takes a random bucket: one TCP flow uses every link,
 * and since the pause is longer than the links' delay difference, the new
 * flowlet's first packet cannot overtake the old one's last. Buckets still
 * decide the link, so weights, backup, drain and failover act the same.
 */
enum ml_spread {
	ML_SPREAD_FLOW = 0,
	ML_SPREAD_FLOWLET = 1,
};

/*
 * ml_flowlets is an array of ML_FLOWLETS entries; a flow's entry is
 * ml_flowlet_index(peer id, flow hash). Two flows that land on one entry share
 * a flowlet, and that is safe: the entry's bucket changes only after a pause
 * of the entry, which is a pause of every flow on it. They just start fewer
 * flowlets. 65,536 entries keep that rare at thousands of flows (1.5 MiB).
 */
#define ML_FLOWLETS 65536 /* a power of two */

static inline __u32 ml_flowlet_index(__u32 peer_id, __u32 hash)
{
	return (hash ^ (peer_id * 0x9e3779b1U)) & (ML_FLOWLETS - 1);
}

struct ml_flowlet {
	__u64 last_ns;  /* the clock (see ml_flowlet_bucket) of the entry's last packet */
	__u32 bucket;   /* the current flowlet's bucket */
	__u32 flowlets; /* flowlets so far (one per bucket draw) */
	__u32 peer_id;  /* the peer and flow hash that started the current flowlet, */
	__u32 hash;     /* for bpftool map dump */
};

enum ml_slot_state {
	ML_SLOT_UNUSED = 0,
	ML_SLOT_UP = 1,   /* neighbour resolved, link usable */
	ML_SLOT_DOWN = 2, /* known link, not usable now */
};

/*
 * ml_egress's decision, written to the first words of __sk_buff->cb for a
 * packet to a peer: `mlinkctl flow get` runs the loaded program on a crafted
 * packet (BPF_PROG_TEST_RUN) and reads it back from ctx_out, so the answer is
 * the datapath's own. Left untouched (all zero from ctx_in) for a packet that
 * is not to a peer. On the live path the words land in the qdisc's scratch
 * area, which every qdisc initialises on enqueue.
 */
#define ML_DECISION_MAGIC 0x4d4c6463U /* "MLdc" */
struct ml_decision {
	__u32 magic;   /* ML_DECISION_MAGIC: a peer entry was found */
	__u32 peer_id;
	__u32 hash;    /* the flow hash of the peer's hash policy */
	__u32 bucket;  /* hash & (ML_BUCKETS - 1) */
	__u32 slot;    /* the bucket's slot, ML_SLOT_NONE if none */
};

/* An ML address: IPv4 in addr[0..3], rest zero. Key of ml_peers/ml_locals. */
struct ml_addr {
	__u8 family; /* AF_INET or AF_INET6 */
	__u8 pad[3];
	__u8 addr[16];
};

/* One link towards a peer: where to send and through which next hop. */
struct ml_slot {
	__u32 ifindex;
	__u8 nh_family; /* AF_INET or AF_INET6; a v4 packet may use a v6 next hop */
	__u8 state;     /* enum ml_slot_state */
	__u16 pad;
	__u8 nh[16];    /* next hop on the link; IPv4 in nh[0..3] */
};

/* Value of ml_peers: the peer's whole link set, replaced in one map write. */
struct ml_peer {
	__u32 peer_id;    /* index of the peer's counters in ml_peer_stats */
	__u8 hash_policy; /* enum ml_hash_policy */
	__u8 nslots;      /* slots in use (informational; buckets decide) */
	__u8 spread;      /* enum ml_spread */
	__u8 pad;
	__u32 flowlet_gap_us; /* FLOWLET: the pause that starts a new flowlet */
	/* Bytes a local TCP socket may have queued in the host beside the packet
	 * at hand; over it the egress drops, which TCP takes as local congestion
	 * (bpf/lib/socket_queue.h). 0: no limit. */
	__u32 socket_queue_limit;
	struct ml_slot slots[ML_MAX_SLOTS];
	__u8 buckets[ML_BUCKETS]; /* slot index per bucket, or ML_SLOT_NONE */
};

struct ml_counter {
	__u64 packets;
	__u64 bytes;
};

/*
 * Value of ml_peer_stats (per-CPU array indexed by peer_id): one lookup per
 * packet updates both. bucket_packets tells the agent which buckets carry
 * flows, so it can move active buckets off a crowded link onto an idle one
 * (with few flows, hashing alone leaves a link idle: docs/FINDINGS.md,
 * "Hash luck: few flows leave a link idle").
 */
struct ml_peer_stats {
	struct ml_counter slots[ML_MAX_SLOTS];
	__u64 bucket_packets[ML_BUCKETS];
};

/*
 * Drop reasons, defined once: X(enum suffix, label, description). Expanded into
 * the BPF enum below and into the C++ name table and metric label values.
 */
#define ML_DROP_REASONS(X)                                                     \
	X(NO_LINK, "no_link", "peer has no usable link for this bucket")       \
	X(SLOT_DOWN, "slot_down", "bucket names a slot that is not up")        \
	X(NO_HEADROOM, "no_headroom", "could not push the L2 placeholder")     \
	X(SOCKET_QUEUE, "socket_queue",                                        \
	  "the sending socket had more than socket_queue_limit queued in the host")

enum ml_drop_reason {
#define ML_X_ENUM(name, label, desc) ML_DROP_##name,
	ML_DROP_REASONS(ML_X_ENUM)
#undef ML_X_ENUM
	ML_DROP_MAX
};

/*
 * Ingress counters (per-CPU array, index = enum value): the ingress program's
 * and the socket filters' on the agent's BFD and topology sockets.
 */
#define ML_INGRESS_COUNTERS(X)                                                  \
	X(DELIVERED, "delivered", "ML traffic redirected into the ML device")   \
	X(ECHO_REFLECTED, "echo_reflected", "BFD echoes sent back out their link") \
	X(ECHO_REFUSED, "echo_refused",                                         \
	  "echoes not reflected: not from a BFD peer of the link to our address on it, or TTL != 255") \
	X(GROUP_REFLECTED, "group_echo_reflected",                              \
	  "peers' group echoes sent back to them by unicast")                   \
	X(GROUP_SEEN, "group_echo_seen",                                        \
	  "reflections of our group echoes, recorded in ml_echo_seen")          \
	X(GROUP_REFUSED, "group_echo_refused",                                  \
	  "group echoes or their reflections refused: TTL, not a BFD peer, unknown nonce") \
	X(SOCK_HOP_LIMIT, "hop_limit",                                          \
	  "to an agent socket with TTL / hop limit != 255 (GTSM)")              \
	X(SOCK_NOT_PEER, "not_a_peer",                                          \
	  "to a BFD socket from no BFD peer of that link and address")          \
	X(SOCK_MALFORMED, "malformed",                                          \
	  "to an agent socket, not shaped like its protocol's packets")

enum ml_ingress_counter {
#define ML_X_ENUM(name, label, desc) ML_IN_##name,
	ML_INGRESS_COUNTERS(ML_X_ENUM)
#undef ML_X_ENUM
	ML_IN_MAX
};

#ifdef __cplusplus
#define ML_STATIC_ASSERT static_assert
#else
#define ML_STATIC_ASSERT _Static_assert
#endif
ML_STATIC_ASSERT(sizeof(struct ml_addr) == 20, "ml_addr layout");
ML_STATIC_ASSERT(sizeof(struct ml_slot) == 24, "ml_slot layout");
ML_STATIC_ASSERT(sizeof(struct ml_peer) == 16 + 24 * ML_MAX_SLOTS + ML_BUCKETS,
	       "ml_peer layout");
ML_STATIC_ASSERT(sizeof(struct ml_counter) == 16, "ml_counter layout");
ML_STATIC_ASSERT(sizeof(struct ml_bfd_key) == 40, "ml_bfd_key layout");
ML_STATIC_ASSERT(sizeof(struct ml_peer_stats) == 16 * ML_MAX_SLOTS + 8 * ML_BUCKETS,
		 "ml_peer_stats layout");
ML_STATIC_ASSERT((ML_BUCKETS & (ML_BUCKETS - 1)) == 0, "buckets: power of two");
ML_STATIC_ASSERT(sizeof(struct ml_decision) == 20, "ml_decision: the five words of cb");
ML_STATIC_ASSERT(ML_MAX_SLOTS < ML_SLOT_NONE, "slot index fits a bucket byte");
ML_STATIC_ASSERT((ML_MAX_SLOTS & (ML_MAX_SLOTS - 1)) == 0, "slots: power of two (bounds mask)");
ML_STATIC_ASSERT(sizeof(struct ml_peer) == 656, "ml_peer: 656 bytes (docs/OPERATIONS.md)");
ML_STATIC_ASSERT(sizeof(struct ml_flowlet) == 24, "ml_flowlet layout");
ML_STATIC_ASSERT((ML_FLOWLETS & (ML_FLOWLETS - 1)) == 0, "flowlets: power of two");
ML_STATIC_ASSERT(sizeof(struct ml_echo_tx) == 8 + 16 * ML_ECHO_RING, "ml_echo_tx layout");
ML_STATIC_ASSERT(sizeof(struct ml_echo_seen) == 32, "ml_echo_seen layout");
ML_STATIC_ASSERT((ML_ECHO_RING & (ML_ECHO_RING - 1)) == 0, "echo ring: power of two");
ML_STATIC_ASSERT(sizeof(struct ml_peer_stats) == 2304, "ml_peer_stats: 2304 bytes per CPU");

#endif /* MLINK_ABI_H */
