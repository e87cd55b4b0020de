/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/*
 * kproxy's BPF object: the maps (maps.h), the cgroup socket programs (sock.h) and the tc
 * programs for traffic from outside the node (tc.h). One object, so both kinds share the
 * endpoint maps a sync writes.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "kproxy.h"
#include "maps.h"
#include "sock.h"
#include "tc.h"

/* The kernel's list of licence strings has no Apache-2.0; the sources are dual-licensed. */
char LICENSE[] SEC("license") = "GPL";
