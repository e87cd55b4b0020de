/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/*
 * kproxy's BPF maps, shared by the socket programs (sock.h) and the tc programs (tc.h).
 * Their keys and values are laid out in kproxy.h.
 */
#ifndef KP_MAPS_H
#define KP_MAPS_H

#include "kproxy.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct kp_service_key);
	__type(value, struct kp_service);
} kp_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 262144);
	__type(key, struct kp_endpoint_key);
	__type(value, struct kp_addr);
} kp_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct kp_revnat_key);
	__type(value, struct kp_addr);
} kp_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct kp_affinity_key);
	__type(value, struct kp_affinity);
} kp_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kp_config);
} kp_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u32);
} kp_netns SEC(".maps");

/* Service addresses for traffic from outside the node (tc). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct kp_service_key);
	__type(value, struct kp_external);
} kp_external SEC(".maps");

/* loadBalancerSourceRanges, by ranges id. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, struct kp_range_key);
	__type(value, __u32);
} kp_ranges SEC(".maps");

/* Both directions of every flow the tc programs translated. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072);
	__type(key, struct kp_ct_key);
	__type(value, struct kp_ct);
} kp_conntrack SEC(".maps");

/* ClientIP affinity of clients outside the node, by source address. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct kp_client_key);
	__type(value, struct kp_affinity);
} kp_client_affinity SEC(".maps");

#endif
