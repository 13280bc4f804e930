/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* maps.h - the datapath's maps, BTF-typed so bpftool prints field names. */
#ifndef ML_LIB_MAPS_H
#define ML_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "mlink_abi.h"

/*
 * Sizes: ml_peers and ml_peer_stats are resized at load to [node] max_peers
 * (x2 for ml_peers); these are the defaults the object carries.
 */

/* Peer ML address -> the peer's link set (slots + bucket table). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ML_DEFAULT_PEERS * 2); /* an IPv4 and an IPv6 address each */
	__type(key, struct ml_addr);
	__type(value, struct ml_peer);
} ml_peers SEC(".maps");

/* Flowlet state, indexed by ml_flowlet_index() (see mlink_abi.h): an array,
 * not a hash, so a lookup is an inlined address computation with no key to
 * hash or compare. Flows that share an entry share one flowlet, which is safe. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ML_FLOWLETS);
	__type(key, __u32);
	__type(value, struct ml_flowlet);
} ml_flowlets SEC(".maps");

/* This host's ML addresses: link ingress delivers traffic to them into ml0. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ML_MAX_LOCALS);
	__type(key, struct ml_addr);
	__type(value, __u32);
} ml_locals SEC(".maps");

/* Egress counters per peer: per slot, and per-bucket activity. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ML_DEFAULT_PEERS);
	__type(key, __u32);
	__type(value, struct ml_peer_stats);
} ml_peer_stats SEC(".maps");

/* ML_ABI_VERSION at key 0, written by the agent after load: the next agent
 * adopts these maps only if it reads its own version here. No program reads it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} ml_abi SEC(".maps");

/* Egress drops by enum ml_drop_reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ML_DROP_MAX);
	__type(key, __u32);
	__type(value, struct ml_counter);
} ml_drops SEC(".maps");

/*
 * The BFD sessions of this host, as (link, our address, peer address): whom
 * ml_ingress reflects echoes for and whom the BFD socket filter lets through.
 * Written by the agent as sessions come and go; sized at load to
 * max_peers x ML_MAX_SLOTS; not preallocated (most of it is never used).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ML_DEFAULT_PEERS * ML_MAX_SLOTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ml_bfd_key);
	__type(value, __u32);
} ml_bfd_peers SEC(".maps");

/* Group echo (mlink_abi.h): the agent's last group echoes per link socket,
 * written by the agent through mmap. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ML_ECHO_SOCKETS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct ml_echo_tx);
} ml_echo_tx SEC(".maps");

/* Reflections of our group echoes, by session slot (ml_bfd_peers' value - 1),
 * read by the agent through mmap. Sized at load like ml_bfd_peers. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ML_DEFAULT_PEERS * ML_MAX_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct ml_echo_seen);
} ml_echo_seen SEC(".maps");

/* Our address per (link, family): where a group reflection leaves from. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct ml_link_key);
	__type(value, struct ml_addr);
} ml_link_addrs SEC(".maps");

/* Ingress counters by enum ml_ingress_counter. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ML_IN_MAX);
	__type(key, __u32);
	__type(value, struct ml_counter);
} ml_ingress_stats SEC(".maps");

static __always_inline void ml_count(void *map, __u32 key, __u32 bytes)
{
	struct ml_counter *c = bpf_map_lookup_elem(map, &key);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

#endif
