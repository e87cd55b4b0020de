//! Golden tests: representative states rendered to `iptables-restore` text (what a full
//! sync into empty tables writes) and compared with `tests/golden/<case>.iptables`.
//!
//! States are built as the daemon builds them: testkit Services, EndpointSlices and this
//! node (`node1`, zone `zone-a`, 192.168.0.2) through a `ChangeTracker`. `KPROXY_BLESS=1`
//! (what `cargo xtask golden --bless` sets) rewrites the files instead; review the diff.
//!
//! `golden_files_load_into_the_kernel` restores every file with iptables-legacy and
//! iptables-nft into network namespaces it creates: a packet test (root, `ip`, iptables),
//! ignored by a plain `cargo test`, run by `cargo xtask test` (and `cargo xtask golden` as
//! root).

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kproxy_core::{Dataplane, IpFamily};
use kproxy_iptables::{IptablesConfig, IptablesDataplane};
use kproxy_netfilter::{FakeConntrack, FakeIptables};
use kproxy_testkit::EndpointBuilder;
use kproxy_testkit::prereq::{Tool, require};
use support::{Cluster, Netns, line_diff, pod_cidr_v4, pod_cidr_v6};

/// One golden case: what it shows, the configuration and the state.
struct Case {
    about: &'static str,
    config: IptablesConfig,
    cluster: Cluster,
}

fn case(about: &'static str, services: &[Service], slices: &[EndpointSlice]) -> Case {
    let config = IptablesConfig {
        cluster_cidrs: vec![pod_cidr_v4(), pod_cidr_v6()],
        families: vec![IpFamily::V4],
        ..IptablesConfig::default()
    };
    Case { about, config, cluster: Cluster::with(services, slices) }
}

fn on(node: &'static str) -> impl FnOnce(EndpointBuilder) -> EndpointBuilder {
    move |e| e.node(node)
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn dataplane(config: &IptablesConfig) -> IptablesDataplane {
    let fake = || Arc::new(FakeIptables::default());
    IptablesDataplane::with_runners(config.clone(), fake(), fake(), Arc::new(FakeConntrack::default()))
}

/// The text of a case: a comment header, then what `kproxy render` prints.
fn render_case(name: &str, case: &Case) -> String {
    format!(
        "# kproxy iptables golden file: {name}\n# {}\n# Regenerate with `cargo xtask golden --bless`; review the diff.\n{}",
        case.about,
        dataplane(&case.config).render(&case.cluster.state)
    )
}

/// Compares `case` with its golden file, or rewrites the file under `KPROXY_BLESS=1`.
fn check(name: &str, case: Case) {
    let actual = render_case(name, &case);
    let path = golden_dir().join(format!("{name}.iptables"));
    if std::env::var("KPROXY_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(golden_dir()).expect("golden directory");
        std::fs::write(&path, &actual).expect("golden file written");
        println!("blessed {}", path.display());
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask golden --bless` to create it", path.display()));
    assert!(
        expected == actual,
        "{name}: rendering differs from {}:\n{}\nIf the change is intended, run `cargo xtask golden --bless` and review the diff.",
        path.display(),
        line_diff(&expected, &actual)
    );
}

macro_rules! golden_cases {
    ($($name:ident),* $(,)?) => {
        /// Every case name, to find golden files no case writes any more.
        const CASES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                check(stringify!($name), cases::$name());
            }
        )*
    };
}

golden_cases!(
    clusterip,
    nodeport,
    loadbalancer_source_ranges,
    external_ips,
    session_affinity,
    etp_local,
    itp_local,
    no_endpoints,
    dual_stack,
    masquerade_all,
    nodeport_addresses_cidrs,
);

#[path = "golden_cases/mod.rs"]
mod cases;

/// Every golden file belongs to a case.
#[test]
fn no_stale_golden_files() {
    let Ok(dir) = std::fs::read_dir(golden_dir()) else {
        return;
    };
    let stale: Vec<String> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|f| f.ends_with(".iptables") && !CASES.iter().any(|c| format!("{c}.iptables") == *f))
        .collect();
    assert!(stale.is_empty(), "golden files without a case: {stale:?}");
}

/// Splits a golden file into its per-family restore texts (`# IPv4: …` headers).
fn per_family(text: &str) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with("# IPv4:") {
            out.push(("iptables", String::new()));
        } else if line.starts_with("# IPv6:") {
            out.push(("ip6tables", String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// Every golden file is restore text both iptables flavours accept: restored for real into
/// namespaces created for the purpose, then removed with them.
#[test]
#[ignore = "packet test: needs root, ip and iptables; run by cargo xtask test"]
fn golden_files_load_into_the_kernel() {
    assert!(
        std::env::var("KPROXY_BLESS").ok().as_deref() != Some("1"),
        "KPROXY_BLESS=1 rewrites the golden files: load them in a comparing run"
    );
    require(&[Tool::Ip, Tool::IptablesLegacy, Tool::IptablesNft]);
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("golden directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "iptables"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden files; run `cargo xtask golden --bless`");
    let mut failures = Vec::new();
    for backend in ["legacy", "nft"] {
        for file in &files {
            let text = std::fs::read_to_string(file).expect("golden file");
            let netns = Netns::create(&format!("golden-{backend}")).expect("a network namespace");
            for (prefix, body) in per_family(&text) {
                let output = netns.run(&format!("{prefix}-{backend}-restore"), &["--noflush", "-w", "30"], &body);
                if !output.status.success() {
                    failures.push(format!(
                        "{} ({prefix}-{backend}): {}",
                        file.display(),
                        String::from_utf8_lossy(&output.stderr)
                    ));
                    continue;
                }
                let saved = netns.run_ok(&format!("{prefix}-{backend}-save"), &["-t", "nat"], "");
                assert!(saved.contains(":KUBE-SERVICES"), "{}: nothing loaded", file.display());
            }
        }
    }
    assert!(failures.is_empty(), "iptables-restore refused golden files:\n{}", failures.join("\n"));
    println!("restored {} golden files with iptables-legacy and iptables-nft", files.len());
}

/// `Dataplane::render` (what `kproxy render` prints) of IPv4 and IPv6 together.
#[test]
fn render_prints_one_restore_text_per_family() {
    let case = cases::dual_stack();
    let text = dataplane(&case.config).render(&case.cluster.state);
    assert_eq!(per_family(&text).iter().map(|(tool, _)| *tool).collect::<Vec<_>>(), ["iptables", "ip6tables"]);
}
