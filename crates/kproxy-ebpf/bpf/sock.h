/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/*
 * Socket-level service balancing: cgroup sock_addr programs that rewrite the destination
 * of connect() and sendmsg() from a service address to one of its endpoints, and the
 * source seen by recvmsg() and getpeername() back to the service address. Nothing here
 * touches packets: a balanced connection costs no per-packet work.
 *
 * Sync protocol (userspace, src/sync.rs): endpoint slots of a service id are written
 * before the count that exposes them, and a lower count before the slots it hides are
 * deleted, so a lookup never lands on a hole.
 */
#ifndef KP_SOCK_H
#define KP_SOCK_H

#define KP_ECONNREFUSED 111

enum kp_verdict { KP_PASS, KP_REJECT, KP_XLATE };

/* Whether this socket's namespace is one we balance (all of them unless filtered). */
static __always_inline int kp_enabled(void *ctx)
{
	__u32 zero = 0;
	struct kp_config *cfg = bpf_map_lookup_elem(&kp_config, &zero);
	if (!cfg || !(cfg->flags & KP_CFG_NETNS_FILTER))
		return 1;
	__u64 netns = bpf_get_netns_cookie(ctx);
	return bpf_map_lookup_elem(&kp_netns, &netns) != 0;
}

static __always_inline int kp_addr_eq(const struct kp_addr *a, const struct kp_addr *b)
{
	return a->addr[0] == b->addr[0] && a->addr[1] == b->addr[1] && a->addr[2] == b->addr[2] &&
	       a->addr[3] == b->addr[3] && a->port == b->port && a->family == b->family;
}

/* The endpoint an affine client used last, if it is still in its slot and not expired. */
static __always_inline int kp_affine(const struct kp_affinity_key *akey, __u32 id, __u32 count, __u64 timeout_ns,
				     __u64 now, struct kp_addr *out)
{
	struct kp_affinity *aff = bpf_map_lookup_elem(&kp_affinity, akey);
	if (!aff || now - aff->last_used_ns > timeout_ns || aff->slot >= count)
		return 0;
	struct kp_endpoint_key ekey = { .service_id = id, .slot = aff->slot };
	struct kp_addr *ep = bpf_map_lookup_elem(&kp_endpoints, &ekey);
	if (!ep || !kp_addr_eq(ep, &aff->endpoint))
		return 0;
	aff->last_used_ns = now;
	*out = *ep;
	return 1;
}

/*
 * Looks `key` up and picks an endpoint into `out`. `per_socket` picks by socket cookie
 * (every datagram of an unconnected UDP socket goes to one endpoint), else at random.
 */
static __always_inline enum kp_verdict kp_xlate(void *ctx, const struct kp_service_key *key, int per_socket,
						struct kp_addr *out)
{
	struct kp_service *svc = bpf_map_lookup_elem(&kp_services, key);
	if (!svc)
		return KP_PASS;
	__u32 id = svc->id;
	__u32 count = svc->count;
	__u32 flags = svc->flags;
	__u64 timeout_ns = (__u64)svc->affinity_secs * 1000000000ull;
	if (count == 0)
		return (flags & KP_SVC_REJECT) ? KP_REJECT : KP_PASS;
	struct kp_affinity_key akey = {};
	__u64 now = 0;
	if (flags & KP_SVC_AFFINITY) {
		akey.netns_cookie = bpf_get_netns_cookie(ctx);
		akey.service_id = id;
		now = bpf_ktime_get_ns();
		if (kp_affine(&akey, id, count, timeout_ns, now, out))
			return KP_XLATE;
	}
	__u32 slot;
	if (per_socket)
		slot = (__u32)((bpf_get_socket_cookie(ctx) * 0x9E3779B97F4A7C15ull) >> 32) % count;
	else
		slot = bpf_get_prandom_u32() % count;
	struct kp_endpoint_key ekey = { .service_id = id, .slot = slot };
	struct kp_addr *ep = bpf_map_lookup_elem(&kp_endpoints, &ekey);
	if (!ep)
		return KP_PASS;
	*out = *ep;
	if (flags & KP_SVC_AFFINITY) {
		struct kp_affinity val = { .last_used_ns = now, .endpoint = *ep, .slot = slot };
		bpf_map_update_elem(&kp_affinity, &akey, &val, BPF_ANY);
	}
	return KP_XLATE;
}

/* Remembers which service address this socket's endpoint stands for. */
static __always_inline void kp_remember(void *ctx, const struct kp_addr *endpoint, const struct kp_service_key *key)
{
	struct kp_revnat_key rkey = {};
	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.endpoint = *endpoint;
	struct kp_addr service = {};
	service.addr[0] = key->addr[0];
	service.addr[1] = key->addr[1];
	service.addr[2] = key->addr[2];
	service.addr[3] = key->addr[3];
	service.port = key->port;
	service.family = key->family;
	bpf_map_update_elem(&kp_revnat, &rkey, &service, BPF_ANY);
}

static __always_inline void kp_key4(struct bpf_sock_addr *ctx, struct kp_service_key *key)
{
	key->addr[0] = ctx->user_ip4;
	key->port = (__u16)ctx->user_port;
	key->proto = (__u8)ctx->protocol;
	key->family = 4;
}

static __always_inline void kp_key6(struct bpf_sock_addr *ctx, struct kp_service_key *key)
{
	key->addr[0] = ctx->user_ip6[0];
	key->addr[1] = ctx->user_ip6[1];
	key->addr[2] = ctx->user_ip6[2];
	key->addr[3] = ctx->user_ip6[3];
	key->port = (__u16)ctx->user_port;
	key->proto = (__u8)ctx->protocol;
	key->family = 6;
}

/* connect4/sendmsg4: 1 lets the call go on (rewritten or not), 0 fails it. */
static __always_inline int kp_forward4(struct bpf_sock_addr *ctx, int per_socket)
{
	if (!kp_enabled(ctx))
		return 1;
	struct kp_service_key key = {};
	kp_key4(ctx, &key);
	struct kp_addr ep = {};
	enum kp_verdict verdict = kp_xlate(ctx, &key, per_socket, &ep);
	if (verdict == KP_REJECT) {
		bpf_set_retval(-KP_ECONNREFUSED);
		return 0;
	}
	if (verdict != KP_XLATE || ep.family != 4)
		return 1;
	ctx->user_ip4 = ep.addr[0];
	ctx->user_port = ep.port;
	kp_remember(ctx, &ep, &key);
	return 1;
}

static __always_inline int kp_forward6(struct bpf_sock_addr *ctx, int per_socket)
{
	if (!kp_enabled(ctx))
		return 1;
	struct kp_service_key key = {};
	kp_key6(ctx, &key);
	struct kp_addr ep = {};
	enum kp_verdict verdict = kp_xlate(ctx, &key, per_socket, &ep);
	if (verdict == KP_REJECT) {
		bpf_set_retval(-KP_ECONNREFUSED);
		return 0;
	}
	if (verdict != KP_XLATE || ep.family != 6)
		return 1;
	ctx->user_ip6[0] = ep.addr[0];
	ctx->user_ip6[1] = ep.addr[1];
	ctx->user_ip6[2] = ep.addr[2];
	ctx->user_ip6[3] = ep.addr[3];
	ctx->user_port = ep.port;
	kp_remember(ctx, &ep, &key);
	return 1;
}

/* recvmsg4/getpeername4: an endpoint this socket was sent to shows as its service. */
static __always_inline int kp_reverse4(struct bpf_sock_addr *ctx)
{
	struct kp_revnat_key rkey = {};
	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.endpoint.addr[0] = ctx->user_ip4;
	rkey.endpoint.port = (__u16)ctx->user_port;
	rkey.endpoint.family = 4;
	struct kp_addr *service = bpf_map_lookup_elem(&kp_revnat, &rkey);
	if (service) {
		ctx->user_ip4 = service->addr[0];
		ctx->user_port = service->port;
	}
	return 1;
}

static __always_inline int kp_reverse6(struct bpf_sock_addr *ctx)
{
	struct kp_revnat_key rkey = {};
	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.endpoint.addr[0] = ctx->user_ip6[0];
	rkey.endpoint.addr[1] = ctx->user_ip6[1];
	rkey.endpoint.addr[2] = ctx->user_ip6[2];
	rkey.endpoint.addr[3] = ctx->user_ip6[3];
	rkey.endpoint.port = (__u16)ctx->user_port;
	rkey.endpoint.family = 6;
	struct kp_addr *service = bpf_map_lookup_elem(&kp_revnat, &rkey);
	if (service) {
		ctx->user_ip6[0] = service->addr[0];
		ctx->user_ip6[1] = service->addr[1];
		ctx->user_ip6[2] = service->addr[2];
		ctx->user_ip6[3] = service->addr[3];
		ctx->user_port = service->port;
	}
	return 1;
}

SEC("cgroup/connect4")
int kp_connect4(struct bpf_sock_addr *ctx)
{
	return kp_forward4(ctx, 0);
}

SEC("cgroup/connect6")
int kp_connect6(struct bpf_sock_addr *ctx)
{
	return kp_forward6(ctx, 0);
}

SEC("cgroup/sendmsg4")
int kp_sendmsg4(struct bpf_sock_addr *ctx)
{
	return kp_forward4(ctx, 1);
}

SEC("cgroup/sendmsg6")
int kp_sendmsg6(struct bpf_sock_addr *ctx)
{
	return kp_forward6(ctx, 1);
}

SEC("cgroup/recvmsg4")
int kp_recvmsg4(struct bpf_sock_addr *ctx)
{
	return kp_reverse4(ctx);
}

SEC("cgroup/recvmsg6")
int kp_recvmsg6(struct bpf_sock_addr *ctx)
{
	return kp_reverse6(ctx);
}

SEC("cgroup/getpeername4")
int kp_getpeername4(struct bpf_sock_addr *ctx)
{
	return kp_reverse4(ctx);
}

SEC("cgroup/getpeername6")
int kp_getpeername6(struct bpf_sock_addr *ctx)
{
	return kp_reverse6(ctx);
}

#endif
