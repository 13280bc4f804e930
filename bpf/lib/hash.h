/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * hash.h - the two per-peer hash policies.
 * l34 is symmetric: f(a->b) == f(b->a), so a flow and its reply pick the same
 * bucket; both ends build the same bucket table over the same canonical link
 * order, so both directions of a flow share one link and a dead link hurts
 * 1/n of the flows instead of ~2/n.
 */
#ifndef ML_LIB_HASH_H
#define ML_LIB_HASH_H

#include "jhash.h"
#include "parse.h"

static __always_inline __u32 ml_hash_l34(const struct ml_flow *f)
{
	__u32 lo = f->saddr < f->daddr ? f->saddr : f->daddr;
	__u32 hi = f->saddr ^ f->daddr ^ lo;
	__u16 plo = f->sport < f->dport ? f->sport : f->dport;
	__u16 phi = f->sport ^ f->dport ^ plo;

	return ml_jhash_3words(lo, hi, ((__u32)plo << 16) | phi, ML_HASH_SEED + f->proto);
}

static __always_inline __u32 ml_flow_hash(struct __sk_buff *skb, const struct ml_flow *f,
					  __u8 policy)
{
	if (policy == ML_HASH_SOCKET)
		return bpf_get_hash_recalc(skb);
	return ml_hash_l34(f);
}

#endif
