use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;
use crate::config::{ConfigLayers, PartialConfig};

/// Kernel settings in memory; paths listed in `read_only` refuse writes.
#[derive(Default)]
struct FakeKernel {
    values: Mutex<BTreeMap<String, String>>,
    read_only: Vec<&'static str>,
}

impl FakeKernel {
    fn with(values: &[(&str, &str)]) -> Self {
        let values = values.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Self { values: Mutex::new(values), read_only: Vec::new() }
    }

    fn get(&self, path: &str) -> Option<String> {
        self.values.lock().unwrap().get(path).cloned()
    }
}

impl KernelSettings for FakeKernel {
    fn read(&self, path: &str) -> io::Result<String> {
        self.get(path).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn write(&self, path: &str, value: &str) -> io::Result<()> {
        if self.read_only.contains(&path) {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
        self.values.lock().unwrap().insert(path.to_owned(), format!("{value}\n"));
        Ok(())
    }
}

fn config(flags: PartialConfig) -> ProxyConfig {
    ConfigLayers { flags, ..ConfigLayers::default() }.resolve().expect("valid")
}

#[test]
fn upstream_defaults_set_the_table_size_and_tcp_timeouts_only() {
    let wanted = settings(&config(PartialConfig::default()), 2);
    let paths: Vec<&str> = wanted.iter().map(|s| s.path).collect();
    assert_eq!(paths, [CONNTRACK_MAX, CONNTRACK_HASHSIZE, TCP_ESTABLISHED, TCP_CLOSE_WAIT]);
    assert_eq!(wanted.iter().map(|s| s.value).collect::<Vec<_>>(), [131_072, 32_768, 86_400, 3_600]);
}

#[test]
fn flags_choose_what_is_set_and_zero_leaves_it() {
    let flags = PartialConfig {
        mode: Some("iptables".to_owned()),
        conntrack_max_per_core: Some(0),
        conntrack_tcp_timeout_close_wait: Some("0s".to_owned()),
        conntrack_tcp_be_liberal: Some(true),
        conntrack_udp_timeout: Some("30s".to_owned()),
        ..PartialConfig::default()
    };
    let wanted = settings(&config(flags), 2);
    let paths: Vec<&str> = wanted.iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/proc/sys/net/ipv4/conf/all/route_localnet", TCP_ESTABLISHED, TCP_BE_LIBERAL, UDP]);
}

#[test]
fn only_differing_values_are_written_and_failures_reported() {
    let mut kernel = FakeKernel::with(&[
        (CONNTRACK_MAX, "262144\n"),
        (CONNTRACK_HASHSIZE, "65536\n"),
        (TCP_ESTABLISHED, "86400\n"),
        (TCP_CLOSE_WAIT, "60\n"),
    ]);
    kernel.read_only = vec![CONNTRACK_MAX];
    let failures = apply(&settings(&config(PartialConfig::default()), 2), &kernel);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].setting.path, CONNTRACK_MAX);
    assert!(!failures[0].setting.required, "read-only outside the host's namespace: a warning");
    assert_eq!(kernel.get(CONNTRACK_HASHSIZE).as_deref(), Some("65536\n"), "large enough already");
    assert_eq!(kernel.get(TCP_CLOSE_WAIT).as_deref(), Some("3600\n"));
    assert_eq!(kernel.get(TCP_ESTABLISHED).as_deref(), Some("86400\n"));
}
