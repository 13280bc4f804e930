// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Fault injector for tests and benchmarks (the kernel here has no netem or
 * act_gact): attached to a link's TC ingress or egress, drops a share of the
 * packets given by loss_ppm in its one-entry map (1000000 = silent blackhole,
 * carrier stays up). Everything is subject to it, ARP and ND included, as on
 * a real broken link.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct ml_fault_cfg {
	__u32 loss_ppm; /* parts per million dropped */
	__u32 dropped;  /* packets dropped so far */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ml_fault_cfg);
} ml_fault_cfg SEC(".maps");

SEC("tc")
int ml_fault(struct __sk_buff *skb)
{
	__u32 key = 0;
	struct ml_fault_cfg *cfg = bpf_map_lookup_elem(&ml_fault_cfg, &key);

	/* UNSPEC, not OK: in direct-action mode OK would end the filter chain and
	 * skip the programs after this one (mlink's ingress among them). */
	if (!cfg || cfg->loss_ppm == 0)
		return TC_ACT_UNSPEC;
	if (cfg->loss_ppm >= 1000000 || bpf_get_prandom_u32() % 1000000 < cfg->loss_ppm) {
		__sync_fetch_and_add(&cfg->dropped, 1);
		return TC_ACT_SHOT;
	}
	return TC_ACT_UNSPEC;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
