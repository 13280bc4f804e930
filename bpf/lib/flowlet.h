/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* flowlet.h - ml_egress's bucket for a peer in flowlet mode (enum ml_spread). */
#ifndef ML_LIB_FLOWLET_H
#define ML_LIB_FLOWLET_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "mlink_abi.h"
#include "maps.h"

/* The flowlet clock: a TCP segment's departure time when the stack set one
 * (EDT: skb->tstamp, CLOCK_MONOTONIC, written for every TCP transmission),
 * else the clock now. Both count the same nanoseconds; the departure time
 * costs a load where bpf_ktime_get_ns() costs ~25 ns in a VM (docs/FINDINGS.md,
 * "The flowlet clock"). */
static __always_inline __u64 ml_flowlet_clock(const struct __sk_buff *skb)
{
	if (skb->tstamp_type == BPF_SKB_TSTAMP_DELIVERY_MONO && skb->tstamp)
		return skb->tstamp;
	return bpf_ktime_get_ns();
}

/* The bucket of a packet with flow hash `hash` to a FLOWLET peer (see enum
 * ml_spread): the flowlet's, or a random one after a pause. The draw avoids
 * the old flowlet's link once (a second draw from the same random word): a
 * flow that paused because its link's queue made it wait should not draw
 * that link again (one flow, 3 links: 0.90 of the limit with one draw, 0.97
 * with this; docs/BENCHMARKS.md "Flowlet mode"). A departure time may lie
 * ahead of the clock (pacing) or of another flow's on the entry: a negative
 * gap counts as no pause. */
static __always_inline __u32 ml_flowlet_bucket(const struct __sk_buff *skb,
					       const struct ml_peer *peer, __u32 hash)
{
	__u32 idx = ml_flowlet_index(peer->peer_id, hash);
	struct ml_flowlet *fl = bpf_map_lookup_elem(&ml_flowlets, &idx);
	__u64 now = ml_flowlet_clock(skb);
	__u32 bucket, r;

	if (!fl) /* never: idx < ML_FLOWLETS; the verifier wants the test */
		return hash & (ML_BUCKETS - 1);
	if ((__s64)(now - fl->last_ns) <= (__s64)peer->flowlet_gap_us * 1000) {
		fl->last_ns = now;
		return fl->bucket & (ML_BUCKETS - 1);
	}
	r = bpf_get_prandom_u32();
	bucket = r & (ML_BUCKETS - 1);
	if (peer->buckets[bucket] == peer->buckets[fl->bucket & (ML_BUCKETS - 1)])
		bucket = (r >> 8) & (ML_BUCKETS - 1);
	fl->last_ns = now;
	fl->bucket = bucket;
	fl->flowlets++;
	fl->peer_id = peer->peer_id;
	fl->hash = hash;
	return bucket;
}

#endif
