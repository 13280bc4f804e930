// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The simulator's fault injection (bench/sim): on the simulator's side of a link, before
 * ml_ingress (which reflects echoes), drops the BFD echoes (UDP to port 3785) addressed to
 * the IPv4 addresses in sim_silenced, so one simulated peer on one link stops reflecting
 * while every other address on the device goes on. The kernel here has no act_gact, so a
 * u32 filter cannot drop. Everything else continues down the filter chain (TC_ACT_UNSPEC).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);   /* destination address, network order */
	__type(value, __u64); /* echoes dropped */
} sim_silenced SEC(".maps");

SEC("tc")
int sim_drop(struct __sk_buff *skb)
{
	struct iphdr ip;
	__be16 dport;
	__u64 *dropped;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_UNSPEC;
	if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
		return TC_ACT_UNSPEC;
	if (ip.protocol != IPPROTO_UDP || (ip.frag_off & bpf_htons(0x3fff)))
		return TC_ACT_UNSPEC;
	if (bpf_skb_load_bytes_relative(skb, (ip.ihl & 0xf) * 4 + 2, &dport, sizeof(dport),
					BPF_HDR_START_NET))
		return TC_ACT_UNSPEC;
	if (dport != bpf_htons(3785))
		return TC_ACT_UNSPEC;
	dropped = bpf_map_lookup_elem(&sim_silenced, &ip.daddr);
	if (!dropped)
		return TC_ACT_UNSPEC;
	__sync_fetch_and_add(dropped, 1);
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
