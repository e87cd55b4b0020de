//! Netns cookies of named network namespaces (what `bpf_get_netns_cookie` returns).

/// The cookie of the namespace `ip netns` calls `name`.
pub fn netns_cookie(name: &str) -> Result<u64, String> {
    let path = kproxy_conformance::netns_path(name);
    kproxy_ebpf::netns_cookie(&path).map_err(|e| format!("netns cookie of {}: {e}", path.display()))
}
