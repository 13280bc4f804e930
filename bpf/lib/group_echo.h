/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * group_echo.h - BFD echo for many peers per link (mlink_abi.h, "Group echo";
 * docs/ARCHITECTURE.md). Two halves, both in ml_ingress:
 *
 * Reflect: a peer's group echo (UDP to 224.0.0.1 / ff02::1 port 3785, from a
 * port other than 3785, TTL / hop limit 255, magic "MLEG", from a BFD peer of
 * this link) goes back to its sender by unicast, from our address on the
 * link (ml_link_addrs). Unlike the unicast echo this is not a swap: the group
 * address is replaced by ours, so both checksums are updated by the
 * difference (bpf_csum_diff; the UDP one through its pseudo-header). The L2
 * header is zeroed, so bpf_redirect_neigh (which refuses a multicast
 * destination MAC) lets the neighbour subsystem build a unicast one to the
 * sender: no MAC is read or written. Only frames with an Ethernet-sized L2
 * header arrive as multicast (pkt_type) and are reflected; on other links
 * (L3, IPoIB) the sender's agent finds no reflection and keeps unicast echoes.
 *
 * Record: the reflection of one of our group echoes (UDP from port 3785,
 * magic "MLEG", TTL 255, from a BFD peer of this link to our address on it)
 * whose (socket, seq, nonce) is one of the last ML_ECHO_RING the agent sent
 * on this link (ml_echo_tx) is written into the session's ml_echo_seen slot
 * and consumed (TC_ACT_STOLEN: the qdisc counts no drop, it is not one): the
 * agent reads the slot, no socket ever sees it.
 */
#ifndef ML_LIB_GROUP_ECHO_H
#define ML_LIB_GROUP_ECHO_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "mlink_abi.h"
#include "lib/maps.h"
#include "lib/parse.h"

/* The payload as it sits in the packet. */
struct ml_echo_wire {
	__be32 magic;
	__be32 socket;
	__be32 seq;
	__be32 sent_hi, sent_lo; /* u64 sent_us, 4-byte aligned in the packet */
	__u32 nonce[2];
	__u32 zero;
};

#define ML_GROUP_NOT (-1) /* not a group echo nor a reflection of one: go on */

static __always_inline int ml_group_refuse(struct __sk_buff *skb)
{
	ml_count(&ml_ingress_stats, ML_IN_GROUP_REFUSED, skb->len);
	return TC_ACT_SHOT;
}

/* The UDP header at l4 and the payload after it, when they look like a group
 * echo (to_echo: dport 3785, sport not) or its reflection (sport 3785, dport
 * not). 0 if so. */
static __always_inline int ml_group_read(struct __sk_buff *skb, __u32 l4, int to_echo,
					 struct udphdr *udp, struct ml_echo_wire *w)
{
	__be16 echo = bpf_htons(ML_BFD_ECHO_PORT);

	if (bpf_skb_load_bytes_relative(skb, l4, udp, sizeof(*udp), BPF_HDR_START_NET))
		return -1;
	if (to_echo ? (udp->dest != echo || udp->source == echo)
		    : (udp->source != echo || udp->dest == echo))
		return -1;
	if (bpf_ntohs(udp->len) < sizeof(*udp) + ML_ECHO_LEN)
		return -1;
	if (bpf_skb_load_bytes_relative(skb, l4 + sizeof(*udp), w, sizeof(*w), BPF_HDR_START_NET))
		return -1;
	return w->magic == bpf_htonl(ML_ECHO_GROUP_MAGIC) ? 0 : -1;
}

/* The ml_bfd_peers value of (this link, local, remote): NULL when no BFD
 * session runs there; else the session's ml_echo_seen slot + 1 (0: none). */
static __always_inline __u32 *ml_group_peer(struct __sk_buff *skb, __u8 family, const void *local,
					    const void *remote, __u32 len)
{
	struct ml_bfd_key k = { .ifindex = skb->ifindex, .family = family };

	__builtin_memcpy(k.local, local, len);
	__builtin_memcpy(k.remote, remote, len);
	return bpf_map_lookup_elem(&ml_bfd_peers, &k);
}

/* The session slot of (this link, local, remote), or -1. */
static __always_inline int ml_group_slot(struct __sk_buff *skb, __u8 family, const void *local,
					 const void *remote, __u32 len)
{
	__u32 *v = ml_group_peer(skb, family, local, remote, len);

	return v && *v ? (int)(*v - 1) : -1;
}

/* A reflection of one of ours: checked against ml_echo_tx, recorded, dropped. */
static __always_inline int ml_group_record(struct __sk_buff *skb, int slot,
					   const struct ml_echo_wire *w)
{
	__u32 socket = bpf_ntohl(w->socket), seq = bpf_ntohl(w->seq), key = (__u32)slot;
	struct ml_echo_tx *tx = bpf_map_lookup_elem(&ml_echo_tx, &socket);
	struct ml_echo_seen *seen;
	struct ml_echo_sent *sent;
	__u64 now, sent_us, nonce;
	__u32 d;

	if (!tx || tx->ifindex != skb->ifindex)
		return ml_group_refuse(skb);
	sent = &tx->ring[seq & (ML_ECHO_RING - 1)];
	__builtin_memcpy(&nonce, w->nonce, sizeof(nonce));
	if (sent->seq != seq || sent->nonce != nonce)
		return ml_group_refuse(skb);
	seen = bpf_map_lookup_elem(&ml_echo_seen, &key);
	if (!seen)
		return ml_group_refuse(skb);
	now = bpf_ktime_get_ns();
	sent_us = ((__u64)bpf_ntohl(w->sent_hi) << 32) | bpf_ntohl(w->sent_lo);
	d = seq - seen->seq; /* modulo 2^32: newer when below 2^31 */
	if (seen->count == 0 || (d != 0 && d < 0x80000000U)) {
		seen->bits = d >= 64 || seen->count == 0 ? 1 : (seen->bits << d) | 1;
		seen->seq = seq;
		seen->last_ns = now;
		seen->rtt_us = (__u32)(now / 1000 - sent_us);
	} else if (-d < 64) {
		seen->bits |= 1ULL << (-d);
	}
	seen->count++;
	ml_count(&ml_ingress_stats, ML_IN_GROUP_SEEN, skb->len);
	return TC_ACT_STOLEN; /* consumed: not a drop in the qdisc's counters */
}

/*
 * Sends the group echo whose IP header is at l2 back to `remote` from `local`:
 * the addresses (addr_len each, at addr_off in the IP header: source then
 * destination) become (local, remote), the ports swap. csum_off: the IPv4
 * header checksum's offset, or -1 (IPv6).
 */
static __always_inline int ml_group_send(struct __sk_buff *skb, __u32 l2, __u32 addr_off,
					 const __u32 *old, const __u32 *new, __u32 addr_len,
					 int csum_off, __u32 l4, const struct udphdr *udp,
					 struct bpf_redir_neigh *nh)
{
	__be16 swapped[2] = { udp->dest, udp->source };
	__u8 zero_l2[ETH_HLEN] = {};
	__u32 len = skb->len;
	__s64 diff;

	if (bpf_skb_store_bytes(skb, 0, zero_l2, ETH_HLEN, 0))
		return TC_ACT_SHOT;
	diff = bpf_csum_diff((__be32 *)old, addr_len * 2, (__be32 *)new, addr_len * 2, 0);
	if (diff < 0)
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, l2 + addr_off, new, addr_len * 2, 0) ||
	    bpf_skb_store_bytes(skb, l2 + l4, swapped, sizeof(swapped), 0))
		return TC_ACT_SHOT;
	if (csum_off >= 0 && bpf_l3_csum_replace(skb, l2 + csum_off, 0, diff, 0))
		return TC_ACT_SHOT;
	if (bpf_l4_csum_replace(skb, l2 + l4 + offsetof(struct udphdr, check), 0, diff,
				BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0))
		return TC_ACT_SHOT;
	ml_count(&ml_ingress_stats, ML_IN_GROUP_REFLECTED, len);
	return bpf_redirect_neigh(skb->ifindex, nh, sizeof(*nh), 0);
}

/* The L2 length of a multicast frame whose IP packet is ip_len bytes:
 * ETH_HLEN, or -1 (not reflected; see above). */
static __always_inline int ml_group_l2(struct __sk_buff *skb, __u32 ip_len)
{
	return ip_len <= skb->len && skb->len - ip_len == ETH_HLEN ? ETH_HLEN : -1;
}

static __always_inline int ml_group4(struct __sk_buff *skb, const struct iphdr *ip)
{
	__u32 ihl = (ip->ihl & 0xf) * 4, ip_len = bpf_ntohs(ip->tot_len);
	struct ml_link_key lk = { .ifindex = skb->ifindex, .family = AF_INET };
	struct bpf_redir_neigh nh = { .nh_family = AF_INET };
	struct ml_echo_wire w;
	struct udphdr udp;
	struct ml_addr *local;
	__u32 old[2], new[2];
	int to_echo = skb->pkt_type == PACKET_MULTICAST, slot, l2;

	if (ip->version != 4 || ihl < sizeof(*ip) ||
	    (ip->frag_off & bpf_htons(ML_IP_MF | ML_IP_OFFSET)))
		return ML_GROUP_NOT;
	if (to_echo != (ip->daddr == bpf_htonl(ML_ECHO_GROUP_V4)))
		return ML_GROUP_NOT;
	if (ml_group_read(skb, ihl, to_echo, &udp, &w))
		return ML_GROUP_NOT;
	if (ip->ttl != 255)
		return ml_group_refuse(skb);
	if (!to_echo) {
		slot = ml_group_slot(skb, AF_INET, &ip->daddr, &ip->saddr, 4);
		return slot < 0 ? ml_group_refuse(skb) : ml_group_record(skb, slot, &w);
	}
	local = bpf_map_lookup_elem(&ml_link_addrs, &lk);
	if (!local)
		return ML_GROUP_NOT; /* no session here: not for us */
	if (!ml_group_peer(skb, AF_INET, local->addr, &ip->saddr, 4))
		return ml_group_refuse(skb);
	l2 = ml_group_l2(skb, ip_len);
	if (l2 < 0)
		return ML_GROUP_NOT;
	old[0] = ip->saddr;
	old[1] = ip->daddr;
	__builtin_memcpy(&new[0], local->addr, 4);
	new[1] = ip->saddr;
	nh.ipv4_nh = ip->saddr;
	return ml_group_send(skb, l2, offsetof(struct iphdr, saddr), old, new, 4,
			     offsetof(struct iphdr, check), ihl, &udp, &nh);
}

static __always_inline int ml_is_all_nodes6(const struct in6_addr *a)
{
	return a->in6_u.u6_addr32[0] == bpf_htonl(0xff020000) && a->in6_u.u6_addr32[1] == 0 &&
	       a->in6_u.u6_addr32[2] == 0 && a->in6_u.u6_addr32[3] == bpf_htonl(1);
}

static __always_inline int ml_group6(struct __sk_buff *skb, const struct ipv6hdr *ip6)
{
	__u32 ip_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	struct ml_link_key lk = { .ifindex = skb->ifindex, .family = AF_INET6 };
	struct bpf_redir_neigh nh = { .nh_family = AF_INET6 };
	struct ml_echo_wire w;
	struct udphdr udp;
	struct ml_addr *local;
	__u32 old[8], new[8];
	int to_echo = skb->pkt_type == PACKET_MULTICAST, slot, l2;

	if (ip6->version != 6 || to_echo != ml_is_all_nodes6(&ip6->daddr))
		return ML_GROUP_NOT;
	if (ml_group_read(skb, sizeof(*ip6), to_echo, &udp, &w))
		return ML_GROUP_NOT;
	if (ip6->hop_limit != 255)
		return ml_group_refuse(skb);
	if (!to_echo) {
		slot = ml_group_slot(skb, AF_INET6, &ip6->daddr, &ip6->saddr, 16);
		return slot < 0 ? ml_group_refuse(skb) : ml_group_record(skb, slot, &w);
	}
	local = bpf_map_lookup_elem(&ml_link_addrs, &lk);
	if (!local)
		return ML_GROUP_NOT;
	if (!ml_group_peer(skb, AF_INET6, local->addr, &ip6->saddr, 16))
		return ml_group_refuse(skb);
	l2 = ml_group_l2(skb, ip_len);
	if (l2 < 0)
		return ML_GROUP_NOT;
	__builtin_memcpy(&old[0], &ip6->saddr, 16);
	__builtin_memcpy(&old[4], &ip6->daddr, 16);
	__builtin_memcpy(&new[0], local->addr, 16);
	__builtin_memcpy(&new[4], &ip6->saddr, 16);
	__builtin_memcpy(nh.ipv6_nh, &ip6->saddr, 16);
	return ml_group_send(skb, l2, offsetof(struct ipv6hdr, saddr), old, new, 16, -1,
			     sizeof(*ip6), &udp, &nh);
}

#endif
