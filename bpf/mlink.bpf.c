// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mlink datapath: one object, two programs sharing the maps in lib/maps.h.
 *
 * ml_egress  - TC egress on the ML device (tun, L3): peer lookup by
 *              destination, bucket pick by flow hash, bpf_redirect_neigh to the
 *              slot's link and next hop. The kernel's neighbour subsystem
 *              writes the L2 header; no link MAC is ever read or written.
 * ml_ingress - TC ingress on each link: traffic to a local ML address is
 *              delivered into the ML device, so strict rp_filter holds. Reads
 *              relative to the network header: links need not be Ethernet.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "mlink_abi.h"
#include "lib/hash.h"
#include "lib/maps.h"
#include "lib/parse.h"

/* Set by the loader before load. */
const volatile __u32 ml_ifindex = 0; /* the ML device: ingress delivers here */
const volatile __u32 ml_l2_len = 0;  /* L2 bytes before the IP header at egress */

static __always_inline int ml_drop(__u32 reason, __u32 len)
{
	ml_count(&ml_drops, reason, len);
	return TC_ACT_SHOT;
}

static __always_inline int ml_parse(struct __sk_buff *skb, struct ml_flow *f)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	void *l3 = data + (ml_l2_len & 0xff);

	if (skb->protocol == bpf_htons(ETH_P_IP))
		return ml_parse_v4(f, l3, end);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return ml_parse_v6(f, l3, end);
	return ML_PARSE_NOT_IP;
}

SEC("tc")
int ml_egress(struct __sk_buff *skb)
{
	struct ml_flow f = {};
	struct bpf_redir_neigh nh = {};
	struct ml_peer *peer;
	struct ml_peer_stats *st;
	struct ml_slot *s;
	__u32 len = skb->len, bucket;
	__u8 slot;

	if (ml_parse(skb, &f) != ML_PARSE_OK)
		return TC_ACT_OK;
	peer = bpf_map_lookup_elem(&ml_peers, &f.dst);
	if (!peer)
		return TC_ACT_OK; /* not a peer: the stack's business */

	bucket = ml_flow_hash(skb, &f, peer->hash_policy) & (ML_BUCKETS - 1);
	slot = peer->buckets[bucket];
	if (slot >= ML_MAX_SLOTS)
		return ml_drop(ML_DROP_NO_LINK, len);
	/* The masks keep the verifier sure of the bounds (findings, gotcha 5). */
	slot &= ML_MAX_SLOTS - 1;
	s = &peer->slots[slot];
	if (s->state != ML_SLOT_UP)
		return ml_drop(ML_DROP_SLOT_DOWN, len);

	nh.nh_family = s->nh_family;
	__builtin_memcpy(&nh.ipv6_nh, s->nh, 16);
	st = bpf_map_lookup_elem(&ml_peer_stats, &peer->peer_id);
	if (st) {
		st->slots[slot].packets++;
		st->slots[slot].bytes += len;
		st->bucket_packets[bucket]++;
	}

	/* redirect_neigh needs mac_header < network_header (gotcha 1): give an L3
	 * device's packet a zeroed placeholder the helper then overwrites. */
	if (ml_l2_len == 0 && bpf_skb_change_head(skb, ETH_HLEN, 0))
		return ml_drop(ML_DROP_NO_HEADROOM, len);
	return bpf_redirect_neigh(s->ifindex, &nh, sizeof(nh), 0);
}

SEC("tc")
int ml_ingress(struct __sk_buff *skb)
{
	struct ml_addr dst = {};
	__u32 off, n;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		dst.family = AF_INET;
		off = offsetof(struct iphdr, daddr);
		n = 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		dst.family = AF_INET6;
		off = offsetof(struct ipv6hdr, daddr);
		n = 16;
	} else {
		return TC_ACT_OK;
	}
	if (bpf_skb_load_bytes_relative(skb, off, dst.addr, n, BPF_HDR_START_NET))
		return TC_ACT_OK;
	if (!bpf_map_lookup_elem(&ml_locals, &dst))
		return TC_ACT_OK;
	ml_count(&ml_ingress_stats, ML_IN_DELIVERED, skb->len);
	return bpf_redirect(ml_ifindex, BPF_F_INGRESS);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
