/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * parse.h - extract what the egress needs from an IPv4/IPv6 packet: the
 * destination (peer lookup key) and the flow fields the l34 hash reads.
 * Fragments carry no ports, so every fragment of a datagram (the first one
 * included) hashes on addresses and protocol only and takes the same link.
 */
#ifndef ML_LIB_PARSE_H
#define ML_LIB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "mlink_abi.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define ML_IP_MF 0x2000
#define ML_IP_OFFSET 0x1fff
#define ML_IPV6_EXT_MAX 4 /* extension headers walked before giving up on ports */

struct ml_flow {
	struct ml_addr dst; /* lookup key */
	__u32 saddr;        /* 32-bit digests of the addresses (v6: xor-folded) */
	__u32 daddr;
	__u16 sport;        /* host order; 0 for fragments and portless protocols */
	__u16 dport;
	__u8 proto;
};

enum ml_parse_result {
	ML_PARSE_OK = 0,
	ML_PARSE_NOT_IP, /* not ours: pass */
};

static __always_inline int ml_has_ports(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP ||
	       proto == IPPROTO_UDPLITE;
}

/* Reads the two 16-bit ports at l4 if they are in the linear area. */
static __always_inline void ml_read_ports(struct ml_flow *f, void *l4, void *end)
{
	__be16 *p = l4;

	if ((void *)(p + 2) > end)
		return;
	f->sport = bpf_ntohs(p[0]);
	f->dport = bpf_ntohs(p[1]);
}

static __always_inline int ml_parse_v4(struct ml_flow *f, void *l3, void *end)
{
	struct iphdr *ip = l3;
	__u32 ihl;

	if ((void *)(ip + 1) > end || ip->version != 4)
		return ML_PARSE_NOT_IP;
	f->dst.family = AF_INET;
	__builtin_memcpy(f->dst.addr, &ip->daddr, 4);
	f->saddr = ip->saddr;
	f->daddr = ip->daddr;
	f->proto = ip->protocol;
	ihl = ip->ihl & 0xf;
	if (ihl < 5)
		return ML_PARSE_NOT_IP;
	if (ip->frag_off & bpf_htons(ML_IP_MF | ML_IP_OFFSET))
		return ML_PARSE_OK; /* fragment: no ports */
	if (ml_has_ports(f->proto))
		ml_read_ports(f, l3 + ihl * 4, end);
	return ML_PARSE_OK;
}

static __always_inline __u32 ml_fold6(const struct in6_addr *a)
{
	return a->in6_u.u6_addr32[0] ^ a->in6_u.u6_addr32[1] ^ a->in6_u.u6_addr32[2] ^
	       a->in6_u.u6_addr32[3];
}

static __always_inline int ml_parse_v6(struct ml_flow *f, void *l3, void *end)
{
	struct ipv6hdr *ip6 = l3;
	void *cur = ip6 + 1;
	__u8 nexthdr;

	if ((void *)(ip6 + 1) > end || ip6->version != 6)
		return ML_PARSE_NOT_IP;
	f->dst.family = AF_INET6;
	__builtin_memcpy(f->dst.addr, &ip6->daddr, 16);
	f->saddr = ml_fold6(&ip6->saddr);
	f->daddr = ml_fold6(&ip6->daddr);
	nexthdr = ip6->nexthdr;

#pragma unroll
	for (int i = 0; i < ML_IPV6_EXT_MAX; i++) {
		struct ipv6_opt_hdr *opt = cur;

		if (nexthdr == IPPROTO_FRAGMENT) {
			/* All fragments, first included: no ports. */
			if ((void *)(opt + 1) > end)
				break;
			f->proto = opt->nexthdr;
			return ML_PARSE_OK;
		}
		if (nexthdr != IPPROTO_HOPOPTS && nexthdr != IPPROTO_ROUTING &&
		    nexthdr != IPPROTO_DSTOPTS && nexthdr != IPPROTO_AH)
			break;
		if ((void *)(opt + 1) > end)
			break;
		if (nexthdr == IPPROTO_AH)
			cur += (opt->hdrlen + 2) * 4;
		else
			cur += (opt->hdrlen + 1) * 8;
		nexthdr = opt->nexthdr;
	}
	f->proto = nexthdr;
	if (ml_has_ports(nexthdr))
		ml_read_ports(f, cur, end);
	return ML_PARSE_OK;
}

#endif
