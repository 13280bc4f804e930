// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mlink datapath: one object, four programs sharing the maps in lib/maps.h.
 *
 * ml_egress  - TC egress on the ML device (tun, L3): peer lookup by
 *              destination, a local TCP socket's queue checked
 *              (lib/socket_queue.h), bucket pick by flow hash (or flowlet),
 *              bpf_redirect_neigh to the slot's link and next hop. The
 *              kernel's neighbour subsystem writes the L2 header; no link MAC
 *              is ever read or written.
 * ml_ingress - TC ingress on each link: BFD echoes from the link's peer are
 *              sent straight back out the link (ml_echo_*); group echoes are
 *              reflected and reflections of ours recorded (lib/group_echo.h);
 *              traffic to a local
 *              ML address is delivered into the ML device, so strict
 *              rp_filter holds. Reads relative to the network header: links
 *              need not be Ethernet.
 * ml_sock_bfd, ml_sock_topo - socket filters on the agent's BFD and topology
 *              sockets (lib/guard.h): what is not TTL 255, not from a BFD
 *              peer of that link, or not shaped like the protocol's packets
 *              is dropped and counted before it is queued to the agent.
 */
#include <linux/bpf.h>
#include <linux/if_packet.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "mlink_abi.h"
#include "lib/flowlet.h"
#include "lib/group_echo.h"
#include "lib/guard.h"
#include "lib/hash.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/socket_queue.h"

/* Set by the loader before load. */
const volatile __u32 ml_ifindex = 0; /* the ML device: ingress delivers here */
const volatile __u32 ml_l2_len = 0;  /* L2 bytes before the IP header at egress */

static __always_inline int ml_drop(__u32 reason, __u32 len)
{
	ml_count(&ml_drops, reason, len);
	return TC_ACT_SHOT;
}

static __always_inline int ml_parse(struct __sk_buff *skb, struct ml_flow *f)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	void *l3 = data + (ml_l2_len & 0xff);

	if (skb->protocol == bpf_htons(ETH_P_IP))
		return ml_parse_v4(f, l3, end);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return ml_parse_v6(f, l3, end);
	return ML_PARSE_NOT_IP;
}

SEC("tc")
int ml_egress(struct __sk_buff *skb)
{
	struct ml_flow f = {};
	struct bpf_redir_neigh nh = {};
	struct ml_peer *peer;
	struct ml_peer_stats *st;
	struct ml_slot *s;
	__u32 len = skb->len, hash, bucket;
	__u8 slot;

	if (ml_parse(skb, &f) != ML_PARSE_OK)
		return TC_ACT_OK;
	peer = bpf_map_lookup_elem(&ml_peers, &f.dst);
	if (!peer)
		return TC_ACT_OK; /* not a peer: the stack's business */

	/* Local congestion, as a full qdisc would signal it (lib/socket_queue.h).
	 * `len` is under this packet's own truesize, so a socket with nothing
	 * else queued always passes: the limit is at least 64 KiB. Before the
	 * flowlet step, so a flowlet's time is that of its last packet sent. */
	if (peer->socket_queue_limit &&
	    ml_socket_queued(skb) > (__u64)peer->socket_queue_limit + len)
		return ml_drop(ML_DROP_SOCKET_QUEUE, len);

	hash = ml_flow_hash(skb, &f, peer->hash_policy);
	if (peer->spread == ML_SPREAD_FLOWLET)
		bucket = ml_flowlet_bucket(skb, peer, hash);
	else
		bucket = hash & (ML_BUCKETS - 1);
	slot = peer->buckets[bucket];
	/* struct ml_decision, for flow get (see mlink_abi.h). */
	skb->cb[0] = ML_DECISION_MAGIC;
	skb->cb[1] = peer->peer_id;
	skb->cb[2] = hash;
	skb->cb[3] = bucket;
	skb->cb[4] = slot;
	if (slot >= ML_MAX_SLOTS)
		return ml_drop(ML_DROP_NO_LINK, len);
	/* The masks keep the verifier sure of the bounds (docs/FINDINGS.md,
	 * "Clang drops bounds checks the verifier needs"). */
	slot &= ML_MAX_SLOTS - 1;
	s = &peer->slots[slot];
	if (s->state != ML_SLOT_UP)
		return ml_drop(ML_DROP_SLOT_DOWN, len);

	nh.nh_family = s->nh_family;
	__builtin_memcpy(&nh.ipv6_nh, s->nh, 16);
	st = bpf_map_lookup_elem(&ml_peer_stats, &peer->peer_id);
	if (st) {
		st->slots[slot].packets++;
		st->slots[slot].bytes += len;
		st->bucket_packets[bucket]++;
	}

	/* redirect_neigh needs mac_header < network_header (docs/FINDINGS.md,
	 * "bpf_redirect_neigh drops packets from L3 devices"): give an L3
	 * device's packet a zeroed placeholder the helper then overwrites. */
	if (ml_l2_len == 0 && bpf_skb_change_head(skb, ETH_HLEN, 0))
		return ml_drop(ML_DROP_NO_HEADROOM, len);
	return bpf_redirect_neigh(s->ifindex, &nh, sizeof(nh), 0);
}

/*
 * BFD echo reflection (RFC 5880 §6.4, RFC 5881 §4). The peer's agent sends an
 * echo over one link to our address on that link: UDP to ML_BFD_ECHO_PORT,
 * TTL / hop limit 255. We loop it back here, in the datapath, so the link stays
 * proven while our agent restarts.
 *
 * Which packets: IPv4 without fragmentation (MF = 0, offset 0; options are
 * allowed, the UDP header is found at IHL * 4) or IPv6 whose next header is
 * UDP itself; dport 3785; sport != 3785, or two reflectors would bounce one
 * packet between them forever; TTL / hop limit 255, so only a sender on the
 * link itself (GTSM, RFC 5881 §5) can make us transmit; from a BFD peer of this
 * link to our address on it (ml_bfd_peers), so we are no relay for anyone
 * else and nobody picks where the reflection goes; addressed to this host
 * at L2 (pkt_type PACKET_HOST: not a broadcast/multicast frame, not a frame
 * for another host seen in promiscuous mode) and unicast at L3 both ways, so
 * the reflection is unicast too; not GRO-merged.
 *
 * What changes: the two addresses and the two ports swap places; nothing else.
 * The IPv4 header checksum and the UDP checksum are one's complement sums of
 * 16-bit words, and addition is commutative: the same words in other
 * positions give the same sum (the addresses are 16-bit aligned, so no word
 * straddles a swapped field). The UDP pseudo-header holds both addresses, so
 * it sums the same too. Both checksums therefore stay valid (also a
 * CHECKSUM_PARTIAL seed and a CHECKSUM_COMPLETE skb->csum), and no csum helper
 * is called. The TTL stays 255: this is not forwarding.
 *
 * Where to write. Reads use BPF_HDR_START_NET (the L2 header may be anything),
 * but bpf_skb_store_bytes writes relative to skb->data, which at TC ingress is
 * the start of the L2 header, and __sk_buff exposes no network-header offset.
 * So l2 = skb->len - IP length: skb->len at TC ingress still counts the L2
 * header, and a frame is padded only below 60 bytes, which an echo (>= 32
 * payload bytes: 74 bytes on Ethernet) never is. Then the header at data + l2
 * must equal, byte for byte, the one read relative to the network header;
 * otherwise (padding, trailers, anything unexpected) the packet is not
 * reflected. bpf_redirect_neigh strips exactly an Ethernet-sized header
 * (skb_pull(sizeof(struct ethhdr)) in __bpf_redirect_neigh), reads its first
 * byte as a destination MAC and needs mac_header < network_header, so the echo
 * leaves with a 14-byte L2 header whatever it came with:
 * - 14 (Ethernet): as it came;
 * - 0 (an L3 link): the zeroed placeholder the egress pushes (docs/FINDINGS.md,
 *   "bpf_redirect_neigh drops packets from L3 devices");
 * - 15 to 34 (IPoIB: a 20-byte pseudo header and a 4-byte header): no helper
 *   shrinks the L2 header itself, but bpf_skb_adjust_room(BPF_ADJ_ROOM_MAC)
 *   removes the bytes right after it by moving the L2 header forward. So the
 *   IP header's first l2 - 14 bytes are copied in front of it (behind a zeroed
 *   14-byte placeholder), and those bytes are then removed from the IP
 *   header's start: the IP header now starts at 14. This runs after the swap,
 *   which happens inside the IP header, so a CHECKSUM_COMPLETE sum (covering
 *   from the network header) is only ever pulled over bytes it covers.
 * Any other length (1 to 13, over 34) is not reflected: the echo passes to the
 * stack, unanswered.
 *
 * bpf_redirect_neigh(skb->ifindex, NULL) routes the swapped packet (its new
 * destination, oif = this link) and lets the neighbour subsystem build the L2
 * header: no MAC is read or written.
 *
 * An echo (dport 3785, sport not) that fails the TTL or the peer test is
 * dropped and counted as ML_IN_ECHO_REFUSED: nothing on this host listens on
 * 3785, so the stack would only answer it with an ICMP error.
 */
#define ML_NOT_ECHO (-1)
/* L2 bytes beyond 14 an echo may come with: the minimum IP header (see above). */
#define ML_ECHO_L2_EXTRA_MAX 20

static __always_inline int ml_echo_refuse(struct __sk_buff *skb)
{
	ml_count(&ml_ingress_stats, ML_IN_ECHO_REFUSED, skb->len);
	return TC_ACT_SHOT;
}

/* (this link, our address, the sender) is one of our BFD sessions. */
static __always_inline int ml_echo_from_peer(struct __sk_buff *skb, __u8 family,
					     const void *local, const void *remote, __u32 len)
{
	struct ml_bfd_key k = { .ifindex = skb->ifindex, .family = family };

	__builtin_memcpy(k.local, local, len);
	__builtin_memcpy(k.remote, remote, len);
	return bpf_map_lookup_elem(&ml_bfd_peers, &k) != NULL;
}

/* a and b hold n (a constant) 32-bit words. */
static __always_inline int ml_same_words(const __u32 *a, const __u32 *b, int n)
{
	__u32 diff = 0;

#pragma unroll
	for (int i = 0; i < 10; i++)
		if (i < n)
			diff |= a[i] ^ b[i];
	return diff == 0;
}

/* Ports read at l4 (relative to the network header), in wire order. */
static __always_inline int ml_echo_ports(struct __sk_buff *skb, __u32 l4, __be16 ports[2])
{
	if (bpf_skb_load_bytes_relative(skb, l4, ports, 4, BPF_HDR_START_NET))
		return 0;
	return ports[1] == bpf_htons(ML_BFD_ECHO_PORT) &&
	       ports[0] != bpf_htons(ML_BFD_ECHO_PORT);
}

/*
 * The IP length is ip_len; the first hdr_len bytes of the IP header, read
 * relative to the network header, are in hdr. Returns the L2 length, or -1 if
 * the packet is not laid out as expected (see above).
 */
static __always_inline int ml_echo_l2(struct __sk_buff *skb, __u32 ip_len, const void *hdr,
				      __u32 hdr_len)
{
	__u32 raw[10];
	__u32 l2;

	if (ip_len > skb->len)
		return -1; /* truncated */
	l2 = skb->len - ip_len;
	if (l2 != 0 && (l2 < ETH_HLEN || l2 > ETH_HLEN + ML_ECHO_L2_EXTRA_MAX))
		return -1;
	if (hdr_len > sizeof(raw) || bpf_skb_load_bytes(skb, l2, raw, hdr_len))
		return -1;
	if (!ml_same_words(raw, hdr, hdr_len / 4))
		return -1;
	return l2;
}

/* A swapped echo whose L2 header is l2 (15..34) bytes gets a 14-byte one
 * (see above). Returns 0, or -1 if it could not (the packet is then unusable). */
static __always_inline int ml_echo_l2_shrink(struct __sk_buff *skb, __u32 l2)
{
	__u8 front[ETH_HLEN + ML_ECHO_L2_EXTRA_MAX] = {};
	__u64 len = l2; /* the placeholder and the IP bytes to move: l2 - 14 */

	/* Opaque to clang, so the bounds test below is made on the register
	 * passed to the helper (the verifier needs it there). */
	asm volatile("" : "+r"(len));
	if (len <= ETH_HLEN || len > sizeof(front))
		return -1;
	if (bpf_skb_load_bytes(skb, l2, front + ETH_HLEN, ML_ECHO_L2_EXTRA_MAX) ||
	    bpf_skb_store_bytes(skb, 0, front, len, 0))
		return -1;
	return bpf_skb_adjust_room(skb, ETH_HLEN - (__s32)l2, BPF_ADJ_ROOM_MAC, 0) ? -1 : 0;
}

/*
 * Swaps addr_len-byte addresses at addr_off and the ports at port_off (both
 * relative to the IP header at data + l2) and sends the packet back out.
 * addrs holds the new (dst, src) pair, i.e. already swapped.
 */
static __always_inline int ml_echo_send(struct __sk_buff *skb, __u32 l2, __u32 addr_off,
					const void *addrs, __u32 addr_len, __u32 port_off,
					const __be16 ports[2])
{
	__be16 swapped[2] = { ports[1], ports[0] };
	__u32 len = skb->len;

	/* Nothing is changed yet: if the push fails, the stack gets the echo. */
	if (l2 == 0) {
		if (bpf_skb_change_head(skb, ETH_HLEN, 0))
			return TC_ACT_OK;
		l2 = ETH_HLEN;
	}
	/* Only ENOMEM / an unwritable clone fails here; a half-swapped or
	 * placeholder-fronted packet must not reach the stack. */
	if (bpf_skb_store_bytes(skb, l2 + addr_off, addrs, addr_len, 0) ||
	    bpf_skb_store_bytes(skb, l2 + port_off, swapped, sizeof(swapped), 0))
		return TC_ACT_SHOT;
	if (l2 > ETH_HLEN && ml_echo_l2_shrink(skb, l2))
		return TC_ACT_SHOT;
	ml_count(&ml_ingress_stats, ML_IN_ECHO_REFLECTED, len);
	return bpf_redirect_neigh(skb->ifindex, NULL, 0, 0);
}

/* 0.0.0.0/8, multicast, reserved and broadcast (224/3) are not unicast. */
static __always_inline int ml_unicast4(__be32 a)
{
	__u8 first = bpf_ntohl(a) >> 24;

	return first != 0 && first < 224;
}

static __always_inline int ml_echo4(struct __sk_buff *skb, const struct iphdr *ip)
{
	__be32 addrs[2] = { ip->daddr, ip->saddr };
	__be16 ports[2];
	__u32 ihl = (ip->ihl & 0xf) * 4, ip_len = bpf_ntohs(ip->tot_len);
	int l2;

	if (ip->version != 4 || ihl < sizeof(*ip) ||
	    (ip->frag_off & bpf_htons(ML_IP_MF | ML_IP_OFFSET)))
		return ML_NOT_ECHO;
	if (!ml_unicast4(ip->saddr) || !ml_unicast4(ip->daddr))
		return ML_NOT_ECHO;
	if (ip_len < ihl + 8 || !ml_echo_ports(skb, ihl, ports))
		return ML_NOT_ECHO;
	if (ip->ttl != 255 || !ml_echo_from_peer(skb, AF_INET, &ip->daddr, &ip->saddr, 4))
		return ml_echo_refuse(skb);
	l2 = ml_echo_l2(skb, ip_len, ip, sizeof(*ip));
	if (l2 < 0)
		return ML_NOT_ECHO;
	return ml_echo_send(skb, l2, offsetof(struct iphdr, saddr), addrs, sizeof(addrs), ihl,
			    ports);
}

static __always_inline int ml_echo6(struct __sk_buff *skb, const struct ipv6hdr *ip6)
{
	struct in6_addr addrs[2] = { ip6->daddr, ip6->saddr };
	__be16 ports[2];
	__u32 ip_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	int l2;

	if (ip6->version != 6 || ip6->saddr.in6_u.u6_addr8[0] == 0xff ||
	    ip6->daddr.in6_u.u6_addr8[0] == 0xff)
		return ML_NOT_ECHO; /* multicast */
	if (ip_len < sizeof(*ip6) + 8 || !ml_echo_ports(skb, sizeof(*ip6), ports))
		return ML_NOT_ECHO;
	if (ip6->hop_limit != 255 ||
	    !ml_echo_from_peer(skb, AF_INET6, &ip6->daddr, &ip6->saddr, 16))
		return ml_echo_refuse(skb);
	l2 = ml_echo_l2(skb, ip_len, ip6, sizeof(*ip6));
	if (l2 < 0)
		return ML_NOT_ECHO;
	return ml_echo_send(skb, l2, offsetof(struct ipv6hdr, saddr), addrs, sizeof(addrs),
			    sizeof(*ip6), ports);
}

/* Cheap tests first: most ingress traffic is not UDP. */
static __always_inline int ml_echo_candidate(struct __sk_buff *skb, __u8 proto)
{
	return proto == IPPROTO_UDP && skb->pkt_type == PACKET_HOST && skb->gso_size == 0;
}

/* A group echo arrives as a multicast frame, its reflection as ours. */
static __always_inline int ml_group_candidate(struct __sk_buff *skb, __u8 proto)
{
	return proto == IPPROTO_UDP && skb->gso_size == 0 &&
	       (skb->pkt_type == PACKET_HOST || skb->pkt_type == PACKET_MULTICAST);
}

SEC("tc")
int ml_ingress(struct __sk_buff *skb)
{
	union {
		struct iphdr v4;
		struct ipv6hdr v6;
	} ip;
	struct ml_addr dst = {};
	int ret;

	/* One read of the fixed header serves both the echo test and the local
	 * lookup; a packet too short for it is not ours. */
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes_relative(skb, 0, &ip.v4, sizeof(ip.v4), BPF_HDR_START_NET))
			return TC_ACT_OK;
		if (ml_echo_candidate(skb, ip.v4.protocol)) {
			ret = ml_echo4(skb, &ip.v4);
			if (ret != ML_NOT_ECHO)
				return ret;
		}
		if (ml_group_candidate(skb, ip.v4.protocol)) {
			ret = ml_group4(skb, &ip.v4);
			if (ret != ML_GROUP_NOT)
				return ret;
		}
		dst.family = AF_INET;
		__builtin_memcpy(dst.addr, &ip.v4.daddr, 4);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes_relative(skb, 0, &ip.v6, sizeof(ip.v6), BPF_HDR_START_NET))
			return TC_ACT_OK;
		if (ml_echo_candidate(skb, ip.v6.nexthdr)) {
			ret = ml_echo6(skb, &ip.v6);
			if (ret != ML_NOT_ECHO)
				return ret;
		}
		if (ml_group_candidate(skb, ip.v6.nexthdr)) {
			ret = ml_group6(skb, &ip.v6);
			if (ret != ML_GROUP_NOT)
				return ret;
		}
		dst.family = AF_INET6;
		__builtin_memcpy(dst.addr, &ip.v6.daddr, 16);
	} else {
		return TC_ACT_OK;
	}
	if (!bpf_map_lookup_elem(&ml_locals, &dst))
		return TC_ACT_OK;
	ml_count(&ml_ingress_stats, ML_IN_DELIVERED, skb->len);
	return bpf_redirect(ml_ifindex, BPF_F_INGRESS);
}

/* A socket filter's verdicts: the whole datagram, or nothing. */
static __always_inline int ml_sock_refuse(struct __sk_buff *skb, __u32 reason)
{
	ml_count(&ml_ingress_stats, reason, skb->len);
	return 0;
}

/*
 * On every BFD socket (control on 3784, the sending socket, the echo
 * sockets): TTL 255 (RFC 5881 §5), from a BFD peer of the link to our
 * address on it, and then a control packet's fixed header (to 3784) or one
 * of our echoes reflected (from 3785). Nothing else is queued to the agent.
 */
SEC("socket")
int ml_sock_bfd(struct __sk_buff *skb)
{
	struct ml_udp u = {};

	if (ml_udp_read(skb, &u))
		return ml_sock_refuse(skb, ML_IN_SOCK_MALFORMED);
	if (u.hop_limit != 255)
		return ml_sock_refuse(skb, ML_IN_SOCK_HOP_LIMIT);
	if (!ml_bfd_peer(&u))
		return ml_sock_refuse(skb, ML_IN_SOCK_NOT_PEER);
	if (u.dport == bpf_htons(ML_BFD_CONTROL_PORT)) {
		if (!ml_bfd_control_shape(skb, &u))
			return ml_sock_refuse(skb, ML_IN_SOCK_MALFORMED);
		return skb->len;
	}
	if (u.sport == bpf_htons(ML_BFD_ECHO_PORT))
		return skb->len;
	return ml_sock_refuse(skb, ML_IN_SOCK_MALFORMED);
}

/* On the topology sockets (any address, every device): TTL 255 and the
 * shape of a topology packet; the agent then checks the MAC. */
SEC("socket")
int ml_sock_topo(struct __sk_buff *skb)
{
	struct ml_udp u = {};

	if (ml_udp_read(skb, &u))
		return ml_sock_refuse(skb, ML_IN_SOCK_MALFORMED);
	if (u.hop_limit != 255)
		return ml_sock_refuse(skb, ML_IN_SOCK_HOP_LIMIT);
	if (!ml_topo_shape(skb, &u))
		return ml_sock_refuse(skb, ML_IN_SOCK_MALFORMED);
	return skb->len;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
