use super::*;
use crate::config::{ConfigLayers, EbpfMapSizes, KubeProxyConfiguration};

fn resolve(file: Option<&str>, env: &[(&str, &str)], flags: PartialConfig) -> Result<ProxyConfig, ConfigError> {
    let layers = ConfigLayers {
        file: file.map(|f| KubeProxyConfiguration::from_yaml(f).expect("test file parses")),
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        flags,
    };
    layers.resolve()
}

#[test]
fn defaults_are_upstreams() {
    let c = resolve(None, &[], PartialConfig::default()).unwrap();
    assert_eq!(c.mode, ProxyMode::Nftables);
    assert_eq!(c.healthz_bind_address, Some("0.0.0.0:10256".parse().unwrap()));
    assert_eq!(c.metrics_bind_address, Some("127.0.0.1:10249".parse().unwrap()));
    assert_eq!(c.sync_period, Duration::from_secs(30));
    assert_eq!(c.min_sync_period, Duration::from_secs(1));
    assert_eq!(c.masquerade_mark(), 0x4000);
    assert_eq!(c.nodeport_addresses, NodePortAddresses::Primary, "nftables mode's default");
    assert_eq!(c.health_timeout(), Duration::from_secs(60));
}

#[test]
fn nodeport_addresses_default_to_primary_in_nftables_mode_only() {
    let with = |mode: &str, addresses: Option<&str>| {
        let flags = PartialConfig {
            mode: Some(mode.to_owned()),
            nodeport_addresses: addresses.map(str::to_owned),
            ..PartialConfig::default()
        };
        resolve(None, &[], flags).unwrap().nodeport_addresses
    };
    assert_eq!(with("nftables", None), NodePortAddresses::Primary);
    assert_eq!(with("nftables", Some("")), NodePortAddresses::Primary, "an empty list is no setting");
    assert_eq!(with("nftables", Some("all")), NodePortAddresses::All, "every address, asked for");
    assert_eq!(with("iptables", None), NodePortAddresses::All);
    assert_eq!(with("userspace", None), NodePortAddresses::All);
    assert_eq!(with("iptables", Some("primary")), NodePortAddresses::Primary);
    let file = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: nftables\nnodePortAddresses: []\n";
    assert_eq!(
        resolve(Some(file), &[], PartialConfig::default()).unwrap().nodeport_addresses,
        NodePortAddresses::Primary
    );
}

const FILE: &str = r#"
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: 10.244.0.0/16,fd00:10:244::/56
iptables:
  syncPeriod: 10s
  minSyncPeriod: 2s
  masqueradeAll: true
nodePortAddresses: ["192.168.0.0/24"]
metricsBindAddress: 0.0.0.0:10249
"#;

#[test]
fn file_overrides_defaults() {
    let c = resolve(Some(FILE), &[], PartialConfig::default()).unwrap();
    assert_eq!(c.mode, ProxyMode::Iptables);
    assert_eq!(c.cluster_cidrs.len(), 2);
    assert_eq!(c.sync_period, Duration::from_secs(10));
    assert_eq!(c.min_sync_period, Duration::from_secs(2));
    assert!(c.masquerade_all);
    assert_eq!(c.nodeport_addresses, NodePortAddresses::Cidrs(vec!["192.168.0.0/24".parse().unwrap()]));
}

#[test]
fn env_overrides_file_and_flags_override_env() {
    let env = [("KPROXY_SYNC_PERIOD", "20s"), ("KPROXY_MIN_SYNC_PERIOD", "3s"), ("KPROXY_MASQUERADE_ALL", "false")];
    let c = resolve(Some(FILE), &env, PartialConfig::default()).unwrap();
    assert_eq!(c.sync_period, Duration::from_secs(20));
    assert!(!c.masquerade_all);
    let flags = PartialConfig { min_sync_period: Some("5s".into()), ..PartialConfig::default() };
    let c = resolve(Some(FILE), &env, flags).unwrap();
    assert_eq!(c.min_sync_period, Duration::from_secs(5));
    assert_eq!(c.sync_period, Duration::from_secs(20));
}

#[test]
fn nftables_section_is_read_in_nftables_mode() {
    let file = "mode: nftables\niptables:\n  syncPeriod: 10s\nnftables:\n  syncPeriod: 7s\n";
    let c = resolve(Some(file), &[], PartialConfig::default()).unwrap();
    assert_eq!(c.sync_period, Duration::from_secs(7));
}

#[test]
fn unknown_file_field_is_an_error() {
    let err = KubeProxyConfiguration::from_yaml("kind: KubeProxyConfiguration\nbogusField: 1\n").unwrap_err();
    assert!(err.contains("bogusField"), "{err}");
}

#[test]
fn wrong_kind_or_version_is_an_error() {
    assert!(KubeProxyConfiguration::from_yaml("kind: Pod\n").is_err());
    assert!(KubeProxyConfiguration::from_yaml("apiVersion: kubeproxy.config.k8s.io/v9\n").is_err());
}

#[test]
fn unknown_env_key_is_an_error() {
    assert!(resolve(None, &[("KPROXY_NO_SUCH_SETTING", "1")], PartialConfig::default()).is_err());
}

#[test]
fn bad_values_are_errors() {
    let cases: Vec<PartialConfig> = vec![
        PartialConfig { mode: Some("ipvs".into()), ..Default::default() },
        PartialConfig { sync_period: Some("0s".into()), ..Default::default() },
        PartialConfig { sync_period: Some("1s".into()), min_sync_period: Some("2s".into()), ..Default::default() },
        PartialConfig { sync_period: Some("soon".into()), ..Default::default() },
        PartialConfig { cluster_cidr: Some("10.0.0.0/8,10.1.0.0/16".into()), ..Default::default() },
        PartialConfig { cluster_cidr: Some("not-a-cidr".into()), ..Default::default() },
        PartialConfig { nodeport_addresses: Some("1.2.3.4".into()), ..Default::default() },
        PartialConfig { healthz_bind_address: Some("0.0.0.0:0".into()), ..Default::default() },
        PartialConfig { metrics_bind_address: Some("localhost:1".into()), ..Default::default() },
        PartialConfig { masquerade_bit: Some(32), ..Default::default() },
        PartialConfig { detect_local_mode: Some("BridgeInterface".into()), ..Default::default() },
        PartialConfig { detect_local_mode: Some("InterfaceNamePrefix".into()), ..Default::default() },
        PartialConfig {
            detect_local_mode: Some("BridgeInterface".into()),
            pod_bridge_interface: Some("cni0\"; drop".into()),
            ..Default::default()
        },
        PartialConfig { detect_local_mode: Some("PodCIDR".into()), ..Default::default() },
        PartialConfig { log_format: Some("xml".into()), ..Default::default() },
    ];
    for flags in cases {
        assert!(resolve(None, &[], flags.clone()).is_err(), "{flags:?} should be rejected");
    }
}

#[test]
fn interface_detect_local_modes_take_their_interface() {
    let bridge = PartialConfig {
        detect_local_mode: Some("BridgeInterface".into()),
        pod_bridge_interface: Some("cbr0".into()),
        pod_interface_name_prefix: Some("ignored".into()),
        ..Default::default()
    };
    let c = resolve(None, &[], bridge).unwrap();
    assert_eq!(c.detect_local_mode, DetectLocalMode::BridgeInterface(InterfaceName::parse("cbr0").unwrap()));
    let prefix = PartialConfig {
        detect_local_mode: Some("InterfaceNamePrefix".into()),
        pod_interface_name_prefix: Some("veth".into()),
        ..Default::default()
    };
    let c = resolve(None, &[], prefix).unwrap();
    assert_eq!(c.detect_local_mode, DetectLocalMode::InterfaceNamePrefix(InterfaceName::parse("veth").unwrap()));
}

#[test]
fn bind_address_accepts_bare_ip_and_empty() {
    let flags = PartialConfig {
        healthz_bind_address: Some("127.0.0.1".into()),
        metrics_bind_address: Some(String::new()),
        ..Default::default()
    };
    let c = resolve(None, &[], flags).unwrap();
    assert_eq!(c.healthz_bind_address, Some("127.0.0.1:10256".parse().unwrap()));
    assert_eq!(c.metrics_bind_address, None);
}

#[test]
fn an_upstream_file_with_every_v1alpha1_field_loads() {
    let text = "apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
featureGates: {SomeGate: true}
clientConnection: {kubeconfig: /var/lib/kube-proxy/kubeconfig.conf, acceptContentTypes: '', contentType: application/vnd.kubernetes.protobuf, qps: 5, burst: 10}
logging: {format: text, verbosity: 2}
hostnameOverride: node1
bindAddress: 0.0.0.0
healthzBindAddress: 0.0.0.0:10256
metricsBindAddress: 127.0.0.1:10249
bindAddressHardFail: false
enableProfiling: false
showHiddenMetricsForVersion: ''
mode: iptables
iptables: {masqueradeAll: false, masqueradeBit: 14, localhostNodePorts: true, syncPeriod: 30s, minSyncPeriod: 1s}
ipvs: {scheduler: rr, syncPeriod: 30s, minSyncPeriod: 0s, excludeCIDRs: null, strictARP: false, tcpTimeout: 0s, tcpFinTimeout: 0s, udpTimeout: 0s}
nftables: {masqueradeAll: false, masqueradeBit: 14, syncPeriod: 30s, minSyncPeriod: 1s}
winkernel: {networkName: '', sourceVip: '', enableDSR: false, rootHnsEndpointName: '', forwardHealthCheckVip: false}
detectLocalMode: ClusterCIDR
detectLocal: {bridgeInterface: '', interfaceNamePrefix: ''}
clusterCIDR: 10.244.0.0/16
nodePortAddresses: null
oomScoreAdj: -999
conntrack: {maxPerCore: 32768, min: 131072, tcpEstablishedTimeout: 24h0m0s, tcpCloseWaitTimeout: 1h0m0s, tcpBeLiberal: false, udpTimeout: 0s, udpStreamTimeout: 0s}
configSyncPeriod: 15m0s
portRange: ''
windowsRunAsService: false
";
    let config = resolve(Some(text), &[], PartialConfig::default()).expect("an upstream file loads");
    assert_eq!(config.mode, ProxyMode::Iptables);
}

#[test]
fn ebpf_interfaces_are_a_comma_separated_list_from_env_or_flags() {
    let c = resolve(None, &[], PartialConfig::default()).unwrap();
    assert!(c.ebpf_interfaces.is_empty(), "default: the interfaces holding the node's addresses");
    let c = resolve(None, &[("KPROXY_EBPF_INTERFACES", "eth0, bond0,")], PartialConfig::default()).unwrap();
    assert_eq!(c.ebpf_interfaces, ["eth0", "bond0"]);
    let flags = PartialConfig { ebpf_interfaces: Some("ens3".to_owned()), ..PartialConfig::default() };
    let c = resolve(None, &[("KPROXY_EBPF_INTERFACES", "eth0")], flags).unwrap();
    assert_eq!(c.ebpf_interfaces, ["ens3"], "the flag wins");
}

#[test]
fn ebpf_map_sizes_come_from_env_or_flags() {
    let c = resolve(None, &[], PartialConfig::default()).unwrap();
    assert_eq!(c.ebpf_map_sizes, EbpfMapSizes::default(), "default: the dataplane's sizes");
    let c = resolve(None, &[("KPROXY_EBPF_MAP_SIZES", "endpoints=524288")], PartialConfig::default()).unwrap();
    assert_eq!(c.ebpf_map_sizes.endpoints, Some(524_288));
    let flags = PartialConfig { ebpf_map_sizes: Some("services=131072".to_owned()), ..PartialConfig::default() };
    let c = resolve(None, &[("KPROXY_EBPF_MAP_SIZES", "endpoints=524288")], flags).unwrap();
    assert_eq!((c.ebpf_map_sizes.services, c.ebpf_map_sizes.endpoints), (Some(131_072), None), "the flag wins whole");
}

#[test]
fn ebpf_netns_is_a_comma_separated_list_of_paths_from_env_or_flags() {
    let c = resolve(None, &[], PartialConfig::default()).unwrap();
    assert!(c.ebpf_netns.is_empty(), "default: every namespace is balanced");
    let c = resolve(None, &[("KPROXY_EBPF_NETNS", "/run/netns/a, /proc/7/ns/net,")], PartialConfig::default()).unwrap();
    assert_eq!(c.ebpf_netns, [std::path::PathBuf::from("/run/netns/a"), std::path::PathBuf::from("/proc/7/ns/net")]);
    let flags = PartialConfig { ebpf_netns: Some("/run/netns/b".to_owned()), ..PartialConfig::default() };
    let c = resolve(None, &[("KPROXY_EBPF_NETNS", "/run/netns/a")], flags).unwrap();
    assert_eq!(c.ebpf_netns, [std::path::PathBuf::from("/run/netns/b")], "the flag wins");
}

#[test]
fn nftables_localhost_nodeports_is_off_unless_asked_for() {
    let config = resolve(None, &[], PartialConfig::default()).expect("defaults resolve");
    assert!(!config.nftables_localhost_nodeports);
    // The iptables section's setting (upstream's, default true) does not turn it on.
    let iptables = "mode: nftables\niptables: {localhostNodePorts: true}\n";
    let config = resolve(Some(iptables), &[], PartialConfig::default()).expect("loads");
    assert!(!config.nftables_localhost_nodeports);
    let file = "mode: nftables\nnftables: {localhostNodePorts: true}\n";
    let config = resolve(Some(file), &[], PartialConfig::default()).expect("loads");
    assert!(config.nftables_localhost_nodeports);
    let back = resolve(Some(&config.to_yaml().expect("writes")), &[], PartialConfig::default()).expect("loads back");
    assert!(back.nftables_localhost_nodeports);
    let env = [("KPROXY_NFTABLES_LOCALHOST_NODEPORTS", "true")];
    assert!(resolve(None, &env, PartialConfig::default()).expect("loads").nftables_localhost_nodeports);
    let flags = PartialConfig { nftables_localhost_nodeports: Some(false), ..PartialConfig::default() };
    assert!(!resolve(Some(file), &[], flags).expect("loads").nftables_localhost_nodeports);
}
