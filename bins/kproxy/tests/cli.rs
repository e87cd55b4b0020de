//! Tests of the `kproxy` binary's command line: usage errors exit 2 with a clear message,
//! `--version` works, and `kproxy render` reads a manifest directory.
//!
//! None of these starts the daemon: every daemon invocation carries a configuration error
//! that stops it before any dataplane is built, and, as a safety net, points at a kubeconfig
//! that does not exist, disables the servers and is killed if it runs longer than
//! [`DEADLINE`].

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::TempDir;

/// The longest one invocation may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// What a finished invocation left behind.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `kproxy args…` with a clean environment plus `env`; kills it (by its pid) after
/// [`DEADLINE`] and fails.
fn kproxy(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kproxy"));
    command.args(args).env_clear().stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("spawn kproxy");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait for kproxy").is_some() {
            break;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let output = child.wait_with_output().expect("collect kproxy's output");
            panic!(
                "kproxy {args:?} still running after {DEADLINE:?}; killed. stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("collect kproxy's output");
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the daemon with `args`, which must make it fail before it starts; see the module docs.
fn daemon(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let safety =
        ["--kubeconfig=/nonexistent/kproxy-cli-test/kubeconfig", "--healthz-bind-address=", "--metrics-bind-address="];
    let all: Vec<&str> = safety.iter().copied().chain(args.iter().copied()).collect();
    kproxy(&all, env)
}

/// Asserts a usage error: status 2, and a first stderr line containing every `needle`.
#[track_caller]
fn assert_usage_error(outcome: &Outcome, needles: &[&str]) {
    assert_eq!(outcome.code, Some(2), "{outcome:#?}");
    let first = outcome.stderr.lines().next().unwrap_or_default();
    for needle in needles {
        assert!(first.contains(needle), "first stderr line {first:?} lacks {needle:?}; {outcome:#?}");
    }
    assert!(outcome.stdout.is_empty(), "{outcome:#?}");
}

#[test]
fn unknown_flag_exits_2_with_one_error_line() {
    let outcome = kproxy(&["--no-such-flag"], &[]);
    assert_usage_error(&outcome, &["error:", "--no-such-flag"]);
    let errors = outcome.stderr.lines().filter(|l| l.contains("error")).count();
    assert_eq!(errors, 1, "one error line: {outcome:#?}");
}

#[test]
fn unknown_proxy_mode_exits_2() {
    let outcome = daemon(&["--proxy-mode=ipvs"], &[]);
    assert_usage_error(&outcome, &["kproxy:", "ipvs", "nftables"]);
    assert_eq!(outcome.stderr.lines().count(), 1, "{outcome:#?}");
}

#[test]
fn bad_sync_period_exits_2() {
    let outcome = daemon(&["--sync-period=soon"], &[]);
    assert_usage_error(&outcome, &["kproxy:", "sync-period", "soon"]);
    assert_eq!(outcome.stderr.lines().count(), 1, "{outcome:#?}");
}

#[test]
fn interface_detect_local_modes_need_a_valid_interface() {
    let outcome = daemon(&["--detect-local-mode=BridgeInterface"], &[]);
    assert_usage_error(&outcome, &["kproxy:", "BridgeInterface", "--pod-bridge-interface"]);
    let args = ["--detect-local-mode=InterfaceNamePrefix", "--pod-interface-name-prefix=veth\"x"];
    let outcome = daemon(&args, &[]);
    assert_usage_error(&outcome, &["kproxy:", "pod-interface-name-prefix", "only letters"]);
    assert_eq!(outcome.stderr.lines().count(), 1, "{outcome:#?}");
}

#[test]
fn bad_ebpf_map_sizes_exit_2_naming_the_map() {
    let outcome = daemon(&["--ebpf-map-sizes=endpoints=524288,backends=10"], &[]);
    assert_usage_error(&outcome, &["kproxy:", "ebpf-map-sizes", "unknown map \"backends\"", "endpoints"]);
    assert_eq!(outcome.stderr.lines().count(), 1, "{outcome:#?}");
    let outcome = daemon(&[], &[("KPROXY_EBPF_MAP_SIZES", "endpoints=0")]);
    assert_usage_error(&outcome, &["kproxy:", "ebpf-map-sizes", "endpoints", "not a size"]);
}

#[test]
fn bad_environment_value_exits_2() {
    let outcome = daemon(&[], &[("KPROXY_SYNC_PERIOD", "bogus")]);
    assert_usage_error(&outcome, &["kproxy:", "sync-period", "bogus"]);
}

#[test]
fn unknown_environment_key_exits_2() {
    let outcome = daemon(&[], &[("KPROXY_NO_SUCH_SETTING", "1")]);
    assert_usage_error(&outcome, &["kproxy:", "KPROXY_"]);
}

#[test]
fn config_file_with_an_unknown_field_exits_2_naming_it() {
    let dir = TempDir::new("unknown-field");
    let file = dir.0.join("config.yaml");
    let text = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nbogusField: 1\n";
    std::fs::write(&file, text).expect("write config");
    let config = format!("--config={}", file.display());
    let outcome = daemon(&[&config], &[]);
    assert_usage_error(&outcome, &["kproxy: config file", "bogusField"]);
}

#[test]
fn missing_config_file_exits_2() {
    let outcome = daemon(&["--config=/nonexistent/kproxy-cli-test/config.yaml"], &[]);
    assert_usage_error(&outcome, &["kproxy: config file", "/nonexistent/kproxy-cli-test/config.yaml"]);
}

#[test]
fn version_prints_name_and_version() {
    let outcome = kproxy(&["--version"], &[]);
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    assert_eq!(outcome.stdout.trim(), format!("kproxy {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_lists_kube_proxy_flags() {
    let outcome = kproxy(&["--help"], &[]);
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    for flag in ["--proxy-mode", "--kubeconfig", "--hostname-override", "--sync-period", "--manifests"] {
        assert!(outcome.stdout.contains(flag), "--help lacks {flag}: {}", outcome.stdout);
    }
}

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Service
metadata: {namespace: ns1, name: svc1}
spec:
  type: ClusterIP
  clusterIP: 172.30.0.41
  clusterIPs: [172.30.0.41]
  ports: [{name: p80, port: 80, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  namespace: ns1
  name: svc1-a
  labels: {kubernetes.io/service-name: svc1}
addressType: IPv4
ports: [{name: p80, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.180.0.1]
  nodeName: node2
---
apiVersion: v1
kind: Node
metadata: {name: node1}
status:
  addresses: [{type: InternalIP, address: 192.168.0.2}]
"#;

#[test]
fn render_reads_a_manifest_directory() {
    let dir = TempDir::new("render");
    std::fs::write(dir.0.join("objects.yaml"), MANIFESTS).expect("write manifests");
    let manifests = dir.0.display().to_string();
    let outcome = kproxy(&["render", "--mode", "nftables", "--manifests", &manifests], &[]);
    match outcome.code {
        // The nftables dataplane is compiled in: it renders the Service.
        Some(0) => {
            assert!(!outcome.stdout.trim().is_empty(), "{outcome:#?}");
            assert!(
                outcome.stdout.contains("172.30.0.41") || outcome.stdout.contains("service ports"),
                "the rendering shows the Service: {outcome:#?}"
            );
            assert!(!outcome.stderr.contains("malformed"), "{outcome:#?}");
        }
        // Not compiled in: one clear line says so.
        Some(2) => assert_usage_error(&outcome, &["kproxy render:", "nftables", "not compiled"]),
        _ => panic!("unexpected outcome: {outcome:#?}"),
    }
}

#[test]
fn render_with_an_unknown_mode_exits_2() {
    let dir = TempDir::new("render-bad-mode");
    let manifests = dir.0.display().to_string();
    let outcome = kproxy(&["render", "--mode", "ipvs", "--manifests", &manifests], &[]);
    assert_usage_error(&outcome, &["kproxy render:", "ipvs"]);
}

#[test]
fn write_config_to_writes_a_file_that_loads_back() {
    let dir = TempDir::new("write-config");
    let file = dir.0.join("written.yaml");
    let to = format!("--write-config-to={}", file.display());
    let outcome = daemon(&[&to, "--proxy-mode=iptables", "--cluster-cidr=10.244.0.0/16", "--sync-period=45s"], &[]);
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    let text = std::fs::read_to_string(&file).expect("the file was written");
    assert!(text.contains("kind: KubeProxyConfiguration") && text.contains("mode: iptables"), "{text}");
    assert!(text.contains("clusterCIDR: 10.244.0.0/16") && text.contains("syncPeriod: 45s"), "{text}");
    // The written file is a valid --config: writing again from it gives the same file.
    let again = dir.0.join("again.yaml");
    let outcome =
        daemon(&[&format!("--config={}", file.display()), &format!("--write-config-to={}", again.display())], &[]);
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    assert_eq!(std::fs::read_to_string(&again).expect("written again"), text);
}

#[test]
fn init_only_exits_after_its_setup() {
    // Nothing to set (this test runs in the machine's namespace; `init_only.rs` checks the
    // settings in a namespace of its own): it exits 0 at once, without an apiserver.
    let none = [
        "--conntrack-max-per-core=0",
        "--conntrack-tcp-timeout-established=0s",
        "--conntrack-tcp-timeout-close-wait=0s",
    ];
    let args: Vec<&str> = ["--init-only", "--proxy-mode=nftables"].into_iter().chain(none).collect();
    let outcome = daemon(&args, &[]);
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
}

#[test]
fn every_kube_proxy_flag_is_accepted() {
    let dir = TempDir::new("ignored-flags");
    let to = format!("--write-config-to={}", dir.0.join("c.yaml").display());
    let flags = [
        "--conntrack-max-per-core=0",
        "--conntrack-min=131072",
        "--conntrack-tcp-timeout-established=24h",
        "--conntrack-tcp-timeout-close-wait=1h",
        "--conntrack-tcp-be-liberal",
        "--conntrack-udp-timeout=30s",
        "--conntrack-udp-timeout-stream=2m",
        "--oom-score-adj=-999",
        "--feature-gates=SomeGate=true",
        "--profiling",
        "--bind-address-hard-fail=false",
        "--kube-api-qps=5",
        "--kube-api-burst=10",
        "--kube-api-content-type=application/vnd.kubernetes.protobuf",
        "--healthz-port=10256",
        "--metrics-port=10249",
        "--proxy-port-range=30000-30100",
        "--pod-bridge-interface=cbr0",
        "--pod-interface-name-prefix=veth",
        "--show-hidden-metrics-for-version=1.34",
        "--ipvs-scheduler=rr",
        "--ipvs-strict-arp",
        "--ipvs-sync-period=30s",
        "--ipvs-min-sync-period=1s",
        "--ipvs-exclude-cidrs=10.0.0.0/8",
        "--ipvs-tcp-timeout=0s",
        "--ipvs-tcpfin-timeout=0s",
        "--ipvs-udp-timeout=0s",
        "--windows-service",
        "--log-flush-frequency=5s",
        "--log-json-info-buffer-size=0",
        "--log-json-split-stream",
        "--log-text-info-buffer-size=0",
        "--log-text-split-stream=false",
        "--vmodule=proxier=4",
    ];
    for flag in flags {
        let outcome = daemon(&[flag, &to], &[]);
        assert_eq!(outcome.code, Some(0), "{flag}: {outcome:#?}");
    }
}

/// svc1 as a NodePort Service with externalTrafficPolicy Local: one endpoint on node1, one
/// on node2.
/// A NodePort Service (policy Local) with one endpoint on node1 and one on node2, and node1;
/// shared with `explain_daemon.rs`.
const EXPLAIN_MANIFESTS: &str = include_str!("fixtures/explain.yaml");

/// A manifest directory holding [`EXPLAIN_MANIFESTS`].
fn explain_dir(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    std::fs::write(dir.0.join("objects.yaml"), EXPLAIN_MANIFESTS).expect("write manifests");
    dir
}

/// `kproxy explain --manifests DIR args… --output json`, parsed.
fn explain_json(dir: &TempDir, args: &[&str]) -> serde_json::Value {
    let manifests = dir.0.display().to_string();
    let all: Vec<&str> =
        ["explain", "--manifests", &manifests, "--output", "json"].into_iter().chain(args.iter().copied()).collect();
    let outcome = kproxy(&all, &[]);
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    serde_json::from_str(&outcome.stdout).unwrap_or_else(|e| panic!("JSON on stdout ({e}): {outcome:#?}"))
}

#[cfg(feature = "nftables")]
#[test]
fn explain_a_node_port_with_local_policy_from_manifests() {
    let dir = explain_dir("explain-local");
    let outside = explain_json(&dir, &["192.168.0.2:30080", "--from", "203.0.113.9", "--cluster-cidr", "10.0.0.0/8"]);
    assert_eq!(outside["mode"], "nftables");
    assert_eq!(outside["service"]["service_port"], "ns1/svc1:p80");
    assert_eq!(outside["service"]["matched_by"], "node_port");
    assert_eq!(outside["service"]["endpoint_set"], "local");
    assert_eq!(outside["verdict"], "forward");
    let eligible: Vec<&str> = outside["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .filter(|e| e["eligible"] == true)
        .filter_map(|e| e["address"].as_str())
        .collect();
    assert_eq!(eligible, ["10.180.1.1:8080"]);
    assert_eq!(outside["masquerade"]["decision"], "no");
    let rules = outside["rules"].as_array().expect("rules");
    assert!(
        rules.iter().any(|r| r["table"] == "ip kproxy service-nodeports" && r["name"] == "tcp . 30080"),
        "{outside:#}"
    );
    let pod = explain_json(&dir, &["192.168.0.2:30080", "--from", "10.0.1.10", "--cluster-cidr", "10.0.0.0/8"]);
    assert_eq!(
        (pod["service"]["short_circuit"].clone(), pod["service"]["endpoint_set"].clone()),
        (true.into(), "cluster".into())
    );
}

#[cfg(feature = "iptables")]
#[test]
fn explain_in_iptables_mode_prints_upstreams_chain_names() {
    let dir = explain_dir("explain-iptables");
    let manifests = dir.0.display().to_string();
    let outcome = kproxy(&["explain", "--manifests", &manifests, "--mode", "iptables", "172.30.0.41:80/tcp"], &[]);
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    for needle in
        ["ns1/svc1:p80", "matched by cluster IP", "verdict      forward", "KUBE-SVC-XPGD46QRK7WJZT7O", "KUBE-SEP-"]
    {
        assert!(outcome.stdout.contains(needle), "no {needle:?} in:\n{}", outcome.stdout);
    }
}

#[cfg(feature = "nftables")]
#[test]
fn explain_of_an_address_no_service_has_says_so() {
    let dir = explain_dir("explain-none");
    let x = explain_json(&dir, &["172.30.0.99:80"]);
    assert_eq!(x["verdict"], "not_a_service");
    assert!(x["service"].is_null(), "{x:#}");
    let x = explain_json(&dir, &["172.30.0.41:80/udp"]);
    assert_eq!(x["verdict"], "not_a_service", "another protocol: {x:#}");
}

#[test]
fn explain_with_an_unparsable_address_exits_2_with_one_line() {
    let dir = explain_dir("explain-bad");
    let manifests = dir.0.display().to_string();
    for (args, needle) in [
        (vec!["172.30.0.41"], "port is missing"),
        (vec!["not-an-address:80"], "invalid destination"),
        (vec!["172.30.0.41:80/icmp"], "icmp"),
        (vec!["172.30.0.41:80", "--from", "pod-a"], "invalid --from"),
    ] {
        let all: Vec<&str> = ["explain", "--manifests", &manifests].into_iter().chain(args.iter().copied()).collect();
        let outcome = kproxy(&all, &[]);
        assert_usage_error(&outcome, &["kproxy explain:", needle]);
        assert_eq!(outcome.stderr.lines().count(), 1, "{outcome:#?}");
    }
}

#[test]
fn explain_against_an_unreachable_daemon_fails_with_status_1() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let url = format!("http://{closed}");
    let outcome = kproxy(&["explain", "--daemon", &url, "172.30.0.41:80"], &[]);
    assert_eq!(outcome.code, Some(1), "{outcome:#?}");
    assert!(outcome.stderr.starts_with("kproxy explain: cannot ask http://127.0.0.1:"), "{outcome:#?}");
}

/// The daemon's answer, served once by a stand-in for the metrics server; returns its URL
/// and the request line it got.
fn one_answer(body: String) -> (String, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).expect("request line");
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let mut stream = reader.into_inner();
        stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes())).expect("answer");
        request_line
    });
    (url, server)
}

#[cfg(feature = "nftables")]
#[test]
fn explain_asks_the_daemons_explain_endpoint_and_prints_its_answer() {
    let dir = explain_dir("explain-daemon");
    // A real explanation, with a mode name the manifests could not have given.
    let answer =
        explain_json(&dir, &["172.30.0.41:80", "--from", "10.0.1.10"]).to_string().replace("nftables", "daemon-mode");
    let (url, server) = one_answer(answer);
    let outcome = kproxy(&["explain", "--daemon", &url, "172.30.0.41:80", "--from", "10.0.1.10"], &[]);
    let request = server.join().expect("the stand-in answered");
    assert_eq!(request.trim_end(), "GET /explain?dst=172.30.0.41%3A80%2Ftcp&from=10.0.1.10 HTTP/1.1");
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    for needle in
        ["packet       172.30.0.41:80/tcp from 10.0.1.10", "(mode daemon-mode)", "ns1/svc1:p80", "verdict      forward"]
    {
        assert!(outcome.stdout.contains(needle), "no {needle:?} in:\n{}", outcome.stdout);
    }
}
