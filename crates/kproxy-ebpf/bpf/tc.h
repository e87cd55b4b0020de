/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/*
 * Traffic from outside the node: tc programs (section `classifier`, attached through tcx
 * or a clsact qdisc) on the node's interfaces.
 *
 * kp_tc_ingress runs on the external interfaces (those holding the node's addresses). A
 * packet to a service address of kp_external (NodePort on a node address, external IP,
 * load-balancer IP, ClusterIP) is checked against the source ranges, gets an endpoint
 * (affinity, else a hash of its tuple), is DNATed to it and, for traffic policy Cluster,
 * SNATed to the node address (a port from KP_SNAT_PORT_MIN up), so replies come back
 * through this node. Both directions go into kp_conntrack, so every later packet of the
 * flow, and every reply, is rewritten the same way without a service lookup.
 *
 * kp_tc_reply runs on the other interfaces (the pods' side): replies of local endpoints
 * are translated back there, before routing (an SNATed reply is addressed to the node
 * itself and would otherwise be delivered locally).
 *
 * A translated packet's source may be a node address, which the kernel's forwarding path
 * refuses as a martian, so it is forwarded by a FIB lookup and a redirect instead.
 * Packets that are not ours go on unchanged (TC_ACT_UNSPEC: the next program, or pass).
 */
#ifndef KP_TC_H
#define KP_TC_H

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>

#define KP_AF_INET 2
#define KP_AF_INET6 10
/* SNAT ports: above the kernel's default ephemeral range (32768-60999), so the node's own
 * connections never share a port with a masqueraded flow. */
#define KP_SNAT_PORT_MIN 61000u
#define KP_SNAT_PORTS 4536u
#define KP_SNAT_TRIES 6

/* A parsed packet: its tuple and where its headers are. */
struct kp_pkt {
	struct kp_ct_key tuple;
	__u32 l4_off;
	__u32 csum_off;
};

/* Reads the tuple of an IPv4/IPv6 TCP or UDP packet (no IPv6 extension headers, no
 * non-first fragments); 0 for anything else. */
static __always_inline int kp_parse(struct __sk_buff *skb, struct kp_pkt *p)
{
	__u8 proto;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)))
			return 0;
		if (ip.frag_off & bpf_htons(0x1fff))
			return 0;
		p->tuple.saddr[0] = ip.saddr;
		p->tuple.daddr[0] = ip.daddr;
		p->tuple.family = 4;
		proto = ip.protocol;
		p->l4_off = ETH_HLEN + ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)))
			return 0;
		__builtin_memcpy(p->tuple.saddr, &ip6.saddr, 16);
		__builtin_memcpy(p->tuple.daddr, &ip6.daddr, 16);
		p->tuple.family = 6;
		proto = ip6.nexthdr;
		p->l4_off = ETH_HLEN + sizeof(ip6);
	} else {
		return 0;
	}
	if (proto == IPPROTO_TCP)
		p->csum_off = p->l4_off + 16;
	else if (proto == IPPROTO_UDP)
		p->csum_off = p->l4_off + 6;
	else
		return 0;
	p->tuple.proto = proto;
	__u16 ports[2];
	if (bpf_skb_load_bytes(skb, p->l4_off, ports, sizeof(ports)))
		return 0;
	p->tuple.sport = ports[0];
	p->tuple.dport = ports[1];
	return 1;
}

static __always_inline __u64 kp_l4_flags(const struct kp_pkt *p)
{
	return p->tuple.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* Rewrites the source (`src`) or destination address from `old` to `new`, checksums too. */
static __always_inline int kp_set_addr(struct __sk_buff *skb, const struct kp_pkt *p, int src, const __u32 *old,
				       const __u32 *new)
{
	__u64 l4 = kp_l4_flags(p) | BPF_F_PSEUDO_HDR;
	if (p->tuple.family == 4) {
		if (old[0] == new[0])
			return 0;
		__u32 off = ETH_HLEN + (src ? offsetof(struct iphdr, saddr) : offsetof(struct iphdr, daddr));
		if (bpf_l4_csum_replace(skb, p->csum_off, old[0], new[0], l4 | 4))
			return -1;
		if (bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old[0], new[0], 4))
			return -1;
		return bpf_skb_store_bytes(skb, off, &new[0], 4, 0);
	}
	__u32 from[4] = { old[0], old[1], old[2], old[3] };
	__u32 to[4] = { new[0], new[1], new[2], new[3] };
	if (from[0] == to[0] && from[1] == to[1] && from[2] == to[2] && from[3] == to[3])
		return 0;
	__s64 diff = bpf_csum_diff(from, 16, to, 16, 0);
	if (diff < 0)
		return -1;
	if (bpf_l4_csum_replace(skb, p->csum_off, 0, diff, l4))
		return -1;
	__u32 off = ETH_HLEN + (src ? offsetof(struct ipv6hdr, saddr) : offsetof(struct ipv6hdr, daddr));
	return bpf_skb_store_bytes(skb, off, to, 16, 0);
}

/* Rewrites the source or destination port. */
static __always_inline int kp_set_port(struct __sk_buff *skb, const struct kp_pkt *p, int src, __u16 old, __u16 new)
{
	if (old == new)
		return 0;
	if (bpf_l4_csum_replace(skb, p->csum_off, old, new, kp_l4_flags(p) | 2))
		return -1;
	return bpf_skb_store_bytes(skb, p->l4_off + (src ? 0 : 2), &new, 2, 0);
}

/* Rewrites the packet as `to` says. */
static __always_inline int kp_nat(struct __sk_buff *skb, const struct kp_pkt *p, const struct kp_ct *to)
{
	if (kp_set_addr(skb, p, 1, p->tuple.saddr, to->src.addr) || kp_set_addr(skb, p, 0, p->tuple.daddr, to->dst.addr))
		return -1;
	if (kp_set_port(skb, p, 1, p->tuple.sport, to->src.port) || kp_set_port(skb, p, 0, p->tuple.dport, to->dst.port))
		return -1;
	return 0;
}

/* Decrements the TTL (hop limit) as forwarding does; 0 when it would expire. */
static __always_inline int kp_dec_ttl(struct __sk_buff *skb, const struct kp_pkt *p)
{
	if (p->tuple.family == 4) {
		__u32 off = ETH_HLEN + offsetof(struct iphdr, ttl);
		__u16 old;
		if (bpf_skb_load_bytes(skb, off, &old, 2))
			return 0;
		__u16 new = old;
		__u8 *ttl = (__u8 *)&new;
		if (*ttl <= 1)
			return 0;
		*ttl -= 1;
		if (bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old, new, 2))
			return 0;
		return bpf_skb_store_bytes(skb, off, &new, 2, 0) == 0;
	}
	__u32 off = ETH_HLEN + offsetof(struct ipv6hdr, hop_limit);
	__u8 hops;
	if (bpf_skb_load_bytes(skb, off, &hops, 1) || hops <= 1)
		return 0;
	hops -= 1;
	return bpf_skb_store_bytes(skb, off, &hops, 1, 0) == 0;
}

/* Sends a translated packet on toward its new destination, routed by the FIB. */
static __always_inline int kp_forward(struct __sk_buff *skb, const struct kp_pkt *p, const struct kp_ct *to)
{
	struct bpf_fib_lookup fib = {};
	fib.ifindex = skb->ingress_ifindex;
	fib.l4_protocol = p->tuple.proto;
	fib.sport = to->src.port;
	fib.dport = to->dst.port;
	if (p->tuple.family == 4) {
		fib.family = KP_AF_INET;
		fib.ipv4_src = to->src.addr[0];
		fib.ipv4_dst = to->dst.addr[0];
	} else {
		fib.family = KP_AF_INET6;
		__builtin_memcpy(fib.ipv6_src, to->src.addr, 16);
		__builtin_memcpy(fib.ipv6_dst, to->dst.addr, 16);
	}
	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TC_ACT_OK; /* not forwardable here: the stack decides */
	if (!kp_dec_ttl(skb, p))
		return TC_ACT_OK; /* the stack answers an expiring packet */
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib.ifindex, 0, 0, 0);
	if (bpf_skb_store_bytes(skb, 0, fib.dmac, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, ETH_ALEN, fib.smac, ETH_ALEN, 0))
		return TC_ACT_SHOT;
	return bpf_redirect(fib.ifindex, 0);
}

/* Translates a packet of a tracked flow; TC_ACT_UNSPEC when the flow is not tracked. */
static __always_inline int kp_tracked(struct __sk_buff *skb, const struct kp_pkt *p)
{
	struct kp_ct *entry = bpf_map_lookup_elem(&kp_conntrack, &p->tuple);
	if (!entry)
		return TC_ACT_UNSPEC;
	struct kp_ct to = *entry;
	if (kp_nat(skb, p, &to))
		return TC_ACT_SHOT;
	return kp_forward(skb, p, &to);
}

static __always_inline __u32 kp_hash(const struct kp_ct_key *t, __u32 salt)
{
	__u32 h = t->saddr[0] ^ t->saddr[1] ^ t->saddr[2] ^ t->saddr[3];
	h ^= ((__u32)t->sport << 16) | t->dport;
	h ^= salt * 0x85ebca6bu;
	return (__u32)(((__u64)h * 0x9E3779B97F4A7C15ull) >> 32);
}

/* Whether the packet's source is in the source ranges `ranges_id`. */
static __always_inline int kp_in_ranges(const struct kp_pkt *p, __u32 ranges_id)
{
	struct kp_range_key key = { .prefixlen = 32 + 128, .ranges_id = ranges_id };
	__builtin_memcpy(key.addr, p->tuple.saddr, 16);
	return bpf_map_lookup_elem(&kp_ranges, &key) != 0;
}

/* Picks the endpoint of service id `id` for this packet's client into `out`. */
static __always_inline int kp_pick(const struct kp_pkt *p, const struct kp_service *svc, struct kp_addr *out)
{
	__u32 id = svc->id;
	__u32 count = svc->count;
	__u32 flags = svc->flags;
	__u64 timeout_ns = (__u64)svc->affinity_secs * 1000000000ull;
	struct kp_client_key ckey = { .service_id = id, .family = p->tuple.family };
	__builtin_memcpy(ckey.addr, p->tuple.saddr, 16);
	__u64 now = 0;
	if (flags & KP_SVC_AFFINITY) {
		now = bpf_ktime_get_ns();
		struct kp_affinity *aff = bpf_map_lookup_elem(&kp_client_affinity, &ckey);
		if (aff && now - aff->last_used_ns <= timeout_ns && aff->slot < count) {
			struct kp_endpoint_key ekey = { .service_id = id, .slot = aff->slot };
			struct kp_addr *ep = bpf_map_lookup_elem(&kp_endpoints, &ekey);
			if (ep && kp_addr_eq(ep, &aff->endpoint)) {
				aff->last_used_ns = now;
				*out = *ep;
				return 1;
			}
		}
	}
	__u32 slot = kp_hash(&p->tuple, 0) % count;
	struct kp_endpoint_key ekey = { .service_id = id, .slot = slot };
	struct kp_addr *ep = bpf_map_lookup_elem(&kp_endpoints, &ekey);
	if (!ep)
		return 0;
	*out = *ep;
	if (flags & KP_SVC_AFFINITY) {
		struct kp_affinity val = { .last_used_ns = now, .endpoint = *ep, .slot = slot };
		bpf_map_update_elem(&kp_client_affinity, &ckey, &val, BPF_ANY);
	}
	return 1;
}

/*
 * Records both directions of a new flow: `fwd` for the client's packets and, under the
 * reply tuple, the way back. With SNAT, the source port is chosen here: the first free
 * one of a few hashed into the SNAT range. 0 when no port was free.
 */
static __always_inline int kp_track(const struct kp_pkt *p, struct kp_ct *fwd, int snat)
{
	struct kp_ct_key rkey = {};
	__builtin_memcpy(rkey.saddr, fwd->dst.addr, 16);
	__builtin_memcpy(rkey.daddr, fwd->src.addr, 16);
	rkey.sport = fwd->dst.port;
	rkey.dport = fwd->src.port;
	rkey.proto = p->tuple.proto;
	rkey.family = p->tuple.family;
	struct kp_ct back = {};
	__builtin_memcpy(back.src.addr, p->tuple.daddr, 16);
	back.src.port = p->tuple.dport;
	back.src.family = p->tuple.family;
	__builtin_memcpy(back.dst.addr, p->tuple.saddr, 16);
	back.dst.port = p->tuple.sport;
	back.dst.family = p->tuple.family;
	int found = !snat;
	if (snat) {
		for (__u32 i = 0; i < KP_SNAT_TRIES; i++) {
			__u16 port = bpf_htons(KP_SNAT_PORT_MIN + kp_hash(&p->tuple, i + 1) % KP_SNAT_PORTS);
			rkey.dport = port;
			if (bpf_map_update_elem(&kp_conntrack, &rkey, &back, BPF_NOEXIST) == 0) {
				found = 1;
			} else {
				struct kp_ct *taken = bpf_map_lookup_elem(&kp_conntrack, &rkey);
				found = taken && kp_addr_eq(&taken->dst, &back.dst) && kp_addr_eq(&taken->src, &back.src);
			}
			if (found) {
				fwd->src.port = port;
				break;
			}
		}
	} else {
		bpf_map_update_elem(&kp_conntrack, &rkey, &back, BPF_ANY);
	}
	if (!found)
		return 0;
	bpf_map_update_elem(&kp_conntrack, &p->tuple, fwd, BPF_ANY);
	return 1;
}

/* A new packet from outside to a service address: balance, translate, forward. */
static __always_inline int kp_from_outside(struct __sk_buff *skb, const struct kp_pkt *p)
{
	struct kp_service_key key = {};
	__builtin_memcpy(key.addr, p->tuple.daddr, 16);
	key.port = p->tuple.dport;
	key.proto = p->tuple.proto;
	key.family = p->tuple.family;
	struct kp_external *ext = bpf_map_lookup_elem(&kp_external, &key);
	if (!ext)
		return TC_ACT_UNSPEC;
	if (ext->ranges_id && !kp_in_ranges(p, ext->ranges_id))
		return TC_ACT_SHOT;
	struct kp_service svc = ext->service;
	if (svc.count == 0)
		/* No endpoint anywhere: the node's stack refuses it (a node port has no
		 * listener); endpoints elsewhere but none this traffic may use: dropped. */
		return (svc.flags & KP_SVC_REJECT) ? TC_ACT_UNSPEC : TC_ACT_SHOT;
	struct kp_ct fwd = {};
	if (!kp_pick(p, &svc, &fwd.dst))
		return TC_ACT_UNSPEC;
	if (fwd.dst.family != p->tuple.family)
		return TC_ACT_SHOT;
	int snat = (svc.flags & KP_SVC_SNAT) != 0;
	if (snat)
		__builtin_memcpy(fwd.src.addr, ext->snat, 16);
	else
		__builtin_memcpy(fwd.src.addr, p->tuple.saddr, 16);
	fwd.src.port = p->tuple.sport;
	fwd.src.family = p->tuple.family;
	if (!kp_track(p, &fwd, snat))
		return TC_ACT_SHOT;
	if (kp_nat(skb, p, &fwd))
		return TC_ACT_SHOT;
	return kp_forward(skb, p, &fwd);
}

SEC("classifier")
int kp_tc_ingress(struct __sk_buff *skb)
{
	struct kp_pkt p = {};
	if (!kp_parse(skb, &p))
		return TC_ACT_UNSPEC;
	int verdict = kp_tracked(skb, &p);
	if (verdict != TC_ACT_UNSPEC)
		return verdict;
	return kp_from_outside(skb, &p);
}

SEC("classifier")
int kp_tc_reply(struct __sk_buff *skb)
{
	struct kp_pkt p = {};
	if (!kp_parse(skb, &p))
		return TC_ACT_UNSPEC;
	return kp_tracked(skb, &p);
}

#endif
