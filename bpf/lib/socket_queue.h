/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * socket_queue.h - what a local TCP socket has queued in this host, so the
 * egress can give TCP back the local congestion signal a redirect loses.
 *
 * On the routed path a full qdisc answers NET_XMIT_DROP up to TCP, which
 * enters CWR and keeps the segment to send later. After bpf_redirect_neigh
 * from ml0's TC egress, sch_handle_egress answers NET_XMIT_SUCCESS whatever
 * the link's qdisc did, so its drop becomes a loss on the wire
 * (docs/FINDINGS.md, "Qdisc drops after bpf_redirect_neigh are real losses").
 * TC_ACT_SHOT at ml0's egress does reach TCP as NET_XMIT_DROP. So when the
 * socket already has more than the peer's socket_queue_limit in the host's
 * queues (sk_wmem_alloc: its skbs not yet sent by a link, by truesize), the
 * egress refuses the packet before a link's qdisc overflows.
 *
 * sk_wmem_alloc is not in struct bpf_sock: it is read through the kernel's
 * BTF (bpf_skc_to_tcp_sock, CO-RE), with local types matched by name.
 */
#ifndef ML_LIB_SOCKET_QUEUE_H
#define ML_LIB_SOCKET_QUEUE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* The kernel's struct sock, refcount_t and atomic_t: only what is read. */
struct ml_atomic___k {
	int counter;
} __attribute__((preserve_access_index));

struct refcount_struct___k {
	struct ml_atomic___k refs;
} __attribute__((preserve_access_index));

struct sock___k {
	struct refcount_struct___k sk_wmem_alloc;
} __attribute__((preserve_access_index));

/* Bytes (truesize) the packet's socket has in the host's queues, this packet
 * included; 0 when the packet has no full local TCP socket (forwarded
 * traffic, UDP, a container's packet after its veth). */
static __always_inline __u32 ml_socket_queued(const struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	struct sock___k *s;

	if (!sk)
		return 0;
	s = (struct sock___k *)bpf_skc_to_tcp_sock(sk);
	if (!s)
		return 0;
	return s->sk_wmem_alloc.refs.counter;
}

#endif
