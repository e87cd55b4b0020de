/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/*
 * The layout of kproxy's BPF maps, shared by the programs (sock.h, tc.h) and checked against
 * the Rust structs of src/layout.rs: every size and offset asserted here is asserted
 * there with the same number, so a change on one side alone fails the build.
 *
 * Addresses are four 32-bit words in network byte order (IPv4 in the first word, the
 * others zero); ports are 16 bits in network byte order; `family` is 4 or 6.
 */
#ifndef KPROXY_H
#define KPROXY_H

#include <linux/types.h>

/* kp_service.flags */
#define KP_SVC_REJECT 1u   /* no endpoint anywhere: refuse the connection */
#define KP_SVC_AFFINITY 2u /* ClientIP session affinity, keyed on the client's netns */
#define KP_SVC_SNAT 4u     /* (tc) masquerade to kp_external.snat: traffic policy Cluster */

/* kp_config.flags */
#define KP_CFG_NETNS_FILTER 1u /* balance only sockets of the netns listed in kp_netns */

/* An address and port. */
struct kp_addr {
	__u32 addr[4];
	__u16 port;
	__u8 family;
	__u8 pad;
};

/* A service address: destination address, port and IP protocol. */
struct kp_service_key {
	__u32 addr[4];
	__u16 port;
	__u8 proto;
	__u8 family;
};

/* What a service address balances over: endpoint slots 0..count of `id`. */
struct kp_service {
	__u32 id;
	__u32 count;
	__u32 flags;
	__u32 affinity_secs;
};

/* One endpoint slot of a service id. */
struct kp_endpoint_key {
	__u32 service_id;
	__u32 slot;
};

/* A socket (cookie) and the endpoint it was sent to: reverse NAT for getpeername/recvmsg. */
struct kp_revnat_key {
	__u64 cookie;
	struct kp_addr endpoint;
	__u32 pad;
};

/* A client (netns cookie) of a service id with ClientIP affinity. */
struct kp_affinity_key {
	__u64 netns_cookie;
	__u32 service_id;
	__u32 pad;
};

/* The endpoint an affine client last used, and when. */
struct kp_affinity {
	__u64 last_used_ns;
	struct kp_addr endpoint;
	__u32 slot;
};

/* Global switches (an array of one). */
struct kp_config {
	__u32 flags;
	__u32 pad;
};

/*
 * A service address as traffic from outside the node sees it (tc programs): the endpoint
 * set as in kp_service, plus source ranges and the address to masquerade to.
 */
struct kp_external {
	struct kp_service service;
	__u32 ranges_id; /* nonzero: the source must be in kp_ranges under this id */
	__u32 snat[4];   /* with KP_SVC_SNAT: the node address replies come back to */
	__u32 pad;
};

/* An LPM key: a source range (loadBalancerSourceRanges) of one ranges id. */
struct kp_range_key {
	__u32 prefixlen; /* 32 (the id) + the range's prefix length */
	__u32 ranges_id;
	__u32 addr[4];
};

/* A packet's tuple: the conntrack key of one direction of a flow. */
struct kp_ct_key {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u16 pad;
};

/* What a packet of a tracked flow is rewritten to: its new source and destination. */
struct kp_ct {
	struct kp_addr src;
	struct kp_addr dst;
};

/* A client (source address) of a service id with ClientIP affinity, from outside. */
struct kp_client_key {
	__u32 addr[4];
	__u32 service_id;
	__u32 family;
};

#define KP_ASSERT_SIZE(type, size) _Static_assert(sizeof(struct type) == (size), #type " size")
#define KP_ASSERT_OFFSET(type, field, off) \
	_Static_assert(__builtin_offsetof(struct type, field) == (off), #type "." #field " offset")

KP_ASSERT_SIZE(kp_addr, 20);
KP_ASSERT_OFFSET(kp_addr, port, 16);
KP_ASSERT_OFFSET(kp_addr, family, 18);
KP_ASSERT_SIZE(kp_service_key, 20);
KP_ASSERT_OFFSET(kp_service_key, port, 16);
KP_ASSERT_OFFSET(kp_service_key, proto, 18);
KP_ASSERT_OFFSET(kp_service_key, family, 19);
KP_ASSERT_SIZE(kp_service, 16);
KP_ASSERT_OFFSET(kp_service, count, 4);
KP_ASSERT_OFFSET(kp_service, flags, 8);
KP_ASSERT_OFFSET(kp_service, affinity_secs, 12);
KP_ASSERT_SIZE(kp_endpoint_key, 8);
KP_ASSERT_OFFSET(kp_endpoint_key, slot, 4);
KP_ASSERT_SIZE(kp_revnat_key, 32);
KP_ASSERT_OFFSET(kp_revnat_key, endpoint, 8);
KP_ASSERT_SIZE(kp_affinity_key, 16);
KP_ASSERT_OFFSET(kp_affinity_key, service_id, 8);
KP_ASSERT_SIZE(kp_affinity, 32);
KP_ASSERT_OFFSET(kp_affinity, endpoint, 8);
KP_ASSERT_OFFSET(kp_affinity, slot, 28);
KP_ASSERT_SIZE(kp_config, 8);
KP_ASSERT_SIZE(kp_external, 40);
KP_ASSERT_OFFSET(kp_external, ranges_id, 16);
KP_ASSERT_OFFSET(kp_external, snat, 20);
KP_ASSERT_SIZE(kp_range_key, 24);
KP_ASSERT_OFFSET(kp_range_key, ranges_id, 4);
KP_ASSERT_OFFSET(kp_range_key, addr, 8);
KP_ASSERT_SIZE(kp_ct_key, 40);
KP_ASSERT_OFFSET(kp_ct_key, daddr, 16);
KP_ASSERT_OFFSET(kp_ct_key, sport, 32);
KP_ASSERT_OFFSET(kp_ct_key, dport, 34);
KP_ASSERT_OFFSET(kp_ct_key, proto, 36);
KP_ASSERT_OFFSET(kp_ct_key, family, 37);
KP_ASSERT_SIZE(kp_ct, 40);
KP_ASSERT_OFFSET(kp_ct, dst, 20);
KP_ASSERT_SIZE(kp_client_key, 24);
KP_ASSERT_OFFSET(kp_client_key, service_id, 16);
KP_ASSERT_OFFSET(kp_client_key, family, 20);

#endif
