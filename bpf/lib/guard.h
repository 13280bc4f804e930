/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * guard.h - what may reach the agent, decided in the kernel before the agent
 * pays for it (docs/ARCHITECTURE.md, "The guard").
 *
 * A UDP datagram is read relative to the network header (BPF_HDR_START_NET),
 * which works alike at TC ingress and in a socket filter, where skb->data is
 * already at the UDP header. IPv4 with options is read at IHL * 4; a
 * fragment, or IPv6 with any extension header before UDP, is not a datagram
 * the agent's protocols send, so it is refused where one is expected.
 */
#ifndef ML_LIB_GUARD_H
#define ML_LIB_GUARD_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "mlink_abi.h"
#include "lib/maps.h"
#include "lib/parse.h"

/* A UDP datagram as the guard sees it. */
struct ml_udp {
	struct ml_bfd_key key; /* ifindex, family, local = destination, remote = source */
	__u32 l4;              /* UDP header offset from the network header */
	__u32 payload_len;     /* UDP payload bytes, from the UDP length field */
	__u8 hop_limit;
	__be16 sport, dport;
};

/* 0: a UDP datagram, read into u; -1: anything else. */
static __always_inline int ml_udp_read(struct __sk_buff *skb, struct ml_udp *u)
{
	union {
		struct iphdr v4;
		struct ipv6hdr v6;
	} ip;
	struct udphdr udp;
	__u32 ulen;

	u->key.ifindex = skb->ifindex;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes_relative(skb, 0, &ip.v4, sizeof(ip.v4), BPF_HDR_START_NET))
			return -1;
		if (ip.v4.version != 4 || ip.v4.protocol != IPPROTO_UDP || ip.v4.ihl < 5 ||
		    (ip.v4.frag_off & bpf_htons(ML_IP_MF | ML_IP_OFFSET)))
			return -1;
		u->key.family = AF_INET;
		__builtin_memcpy(u->key.local, &ip.v4.daddr, 4);
		__builtin_memcpy(u->key.remote, &ip.v4.saddr, 4);
		u->hop_limit = ip.v4.ttl;
		u->l4 = (ip.v4.ihl & 0xf) * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes_relative(skb, 0, &ip.v6, sizeof(ip.v6), BPF_HDR_START_NET))
			return -1;
		if (ip.v6.version != 6 || ip.v6.nexthdr != IPPROTO_UDP)
			return -1;
		u->key.family = AF_INET6;
		__builtin_memcpy(u->key.local, &ip.v6.daddr, 16);
		__builtin_memcpy(u->key.remote, &ip.v6.saddr, 16);
		u->hop_limit = ip.v6.hop_limit;
		u->l4 = sizeof(ip.v6);
	} else {
		return -1;
	}
	if (bpf_skb_load_bytes_relative(skb, u->l4, &udp, sizeof(udp), BPF_HDR_START_NET))
		return -1;
	ulen = bpf_ntohs(udp.len);
	if (ulen < sizeof(udp))
		return -1;
	u->payload_len = ulen - sizeof(udp);
	u->sport = udp.source;
	u->dport = udp.dest;
	return 0;
}

static __always_inline int ml_bfd_peer(const struct ml_udp *u)
{
	return bpf_map_lookup_elem(&ml_bfd_peers, &u->key) != NULL;
}

/*
 * A BFD control packet's fixed header as RFC 5880 §6.8.6 checks it first:
 * version 1, Detect Mult non-zero, Multipoint clear, Length at least 24 and
 * within the datagram.
 */
static __always_inline int ml_bfd_control_shape(struct __sk_buff *skb, const struct ml_udp *u)
{
	__u8 h[4];

	if (u->payload_len < 24 ||
	    bpf_skb_load_bytes_relative(skb, u->l4 + 8, h, sizeof(h), BPF_HDR_START_NET))
		return 0;
	return (h[0] >> 5) == 1 && (h[1] & 0x01) == 0 && h[2] != 0 && h[3] >= 24 &&
	       h[3] <= u->payload_len;
}

/* A topology packet (docs/PROTOCOL.md): magic MLNK, its length field the
 * datagram's, at least a header and a MAC, at most 1232 bytes. */
#define ML_TOPO_MIN 84
#define ML_TOPO_MAX 1232
static __always_inline int ml_topo_shape(struct __sk_buff *skb, const struct ml_udp *u)
{
	__u8 h[10];

	if (u->payload_len < ML_TOPO_MIN || u->payload_len > ML_TOPO_MAX ||
	    bpf_skb_load_bytes_relative(skb, u->l4 + 8, h, sizeof(h), BPF_HDR_START_NET))
		return 0;
	return h[0] == 'M' && h[1] == 'L' && h[2] == 'N' && h[3] == 'K' &&
	       ((__u32)h[8] << 8 | h[9]) == u->payload_len;
}

#endif
