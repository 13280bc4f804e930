// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * L2 shape changer for tests: gives every IP packet the 24-byte L2 header an
 * IPoIB device hands TC ingress (IPOIB_HARD_LEN: a zeroed 20-byte pseudo
 * header, then the 2-byte protocol and 2 reserved bytes) in place of its
 * 14-byte Ethernet header. This kernel has no InfiniBand device; this is how
 * mlink's ingress is tested on that shape.
 *
 * bpf_skb_change_head pushes the 10 missing bytes and resets the MAC header
 * (and mac_len) to the new start, so the next program sees a 24-byte L2.
 * - BPF_PROG_TEST_RUN runs one program: this one tail-calls ml_shape_next[0]
 *   (ml_ingress, put there by the test).
 * - On a link (tests/tools/ml_l2shape.cpp), with the slot empty, it returns
 *   TC_ACT_UNSPEC and the filter chain goes on to mlink's ingress.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ML_IPOIB_HARD_LEN 24

struct ml_ipoib_shape {
	__u8 pseudo[20];
	__be16 proto;
	__u16 reserved;
};

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} ml_shape_next SEC(".maps");

SEC("tc")
int ml_l2shape(struct __sk_buff *skb)
{
	struct ml_ipoib_shape h = { .proto = (__be16)skb->protocol };

	if (skb->protocol != bpf_htons(ETH_P_IP) && skb->protocol != bpf_htons(ETH_P_IPV6))
		return TC_ACT_UNSPEC;
	if (bpf_skb_change_head(skb, ML_IPOIB_HARD_LEN - ETH_HLEN, 0) ||
	    bpf_skb_store_bytes(skb, 0, &h, sizeof(h), 0))
		return TC_ACT_SHOT;
	bpf_tail_call(skb, &ml_shape_next, 0);
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
