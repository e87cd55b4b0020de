//! Configuration: kube-proxy's `KubeProxyConfiguration` file, `KPROXY_*` environment
//! variables and flags, layered once at start-up (defaults < file < env < flags), then
//! validated into an immutable [`ProxyConfig`].

mod conntrack;
mod duration;
mod ebpf_maps;
mod file;
mod layers;
mod validate;
mod write;

pub use conntrack::ConntrackConfig;
pub use duration::{format_go_duration, parse_go_duration};
pub use ebpf_maps::{EBPF_MAP_MAX_ENTRIES, EBPF_MAPS, EbpfMapSizes};
pub use file::KubeProxyConfiguration;
pub use layers::{ConfigLayers, PartialConfig};
pub use validate::{ConfigError, DetectLocalMode, LogFormat, NodePortAddresses, ProxyConfig, ProxyMode};
