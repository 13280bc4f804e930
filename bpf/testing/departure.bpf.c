// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Gives a test packet a departure time, then runs the program in
 * ml_departure_next. BPF_PROG_TEST_RUN takes __sk_buff tstamp from the caller
 * but not its type, so a test could not otherwise present what TCP hands the
 * ML device: every segment stamped with its CLOCK_MONOTONIC departure time.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} ml_departure_next SEC(".maps");

__u64 departure_ns = 0; /* set by the test before each run; not 0 */

SEC("tc")
int ml_departure(struct __sk_buff *skb)
{
	if (bpf_skb_set_tstamp(skb, departure_ns, BPF_SKB_TSTAMP_DELIVERY_MONO))
		return TC_ACT_SHOT;
	bpf_tail_call(skb, &ml_departure_next, 0);
	return TC_ACT_SHOT; /* no program in the array */
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
