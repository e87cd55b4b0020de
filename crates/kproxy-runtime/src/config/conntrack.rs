//! upstream's `conntrack` settings (`--conntrack-*`, the file's `conntrack:` section): the
//! kernel's connection-tracking limits and timeouts kube-proxy sets when it starts.

use std::time::Duration;

use super::duration::{format_go_duration, parse_go_duration};
use super::file::Conntrack;
use super::layers::PartialConfig;
use super::validate::ConfigError;

/// What the node's conntrack should be set to; zero leaves a setting alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConntrackConfig {
    /// `--conntrack-max-per-core`: `nf_conntrack_max` is this times the CPUs (0: leave it).
    pub max_per_core: u32,
    /// `--conntrack-min`: the least `nf_conntrack_max` (when `max_per_core` is set).
    pub min: u32,
    /// `--conntrack-tcp-timeout-established`.
    pub tcp_established_timeout: Duration,
    /// `--conntrack-tcp-timeout-close-wait`.
    pub tcp_close_wait_timeout: Duration,
    /// `--conntrack-tcp-be-liberal`: out-of-window TCP packets are not INVALID, and the
    /// netfilter modes leave out their INVALID drop rule (as upstream).
    pub tcp_be_liberal: bool,
    /// `--conntrack-udp-timeout`.
    pub udp_timeout: Duration,
    /// `--conntrack-udp-timeout-stream`.
    pub udp_stream_timeout: Duration,
}

impl Default for ConntrackConfig {
    /// upstream's defaults.
    fn default() -> Self {
        Self {
            max_per_core: 32 * 1024,
            min: 128 * 1024,
            tcp_established_timeout: Duration::from_secs(24 * 3600),
            tcp_close_wait_timeout: Duration::from_secs(3600),
            tcp_be_liberal: false,
            udp_timeout: Duration::ZERO,
            udp_stream_timeout: Duration::ZERO,
        }
    }
}

impl ConntrackConfig {
    /// The settings of a merged layer; a negative count or a bad duration is an error.
    pub(super) fn validate(c: &PartialConfig) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let count = |name: &str, value: Option<i32>, default: u32| match value {
            None => Ok(default),
            Some(v) => u32::try_from(v).map_err(|_| invalid(format!("conntrack-{name}: {v} must not be negative"))),
        };
        let duration = |name: &str, value: &Option<String>, default: Duration| match value.as_deref() {
            None => Ok(default),
            Some(text) => parse_go_duration(text).map_err(|e| invalid(format!("conntrack-{name}: {e}"))),
        };
        Ok(Self {
            max_per_core: count("max-per-core", c.conntrack_max_per_core, defaults.max_per_core)?,
            min: count("min", c.conntrack_min, defaults.min)?,
            tcp_established_timeout: duration(
                "tcp-timeout-established",
                &c.conntrack_tcp_timeout_established,
                defaults.tcp_established_timeout,
            )?,
            tcp_close_wait_timeout: duration(
                "tcp-timeout-close-wait",
                &c.conntrack_tcp_timeout_close_wait,
                defaults.tcp_close_wait_timeout,
            )?,
            tcp_be_liberal: c.conntrack_tcp_be_liberal.unwrap_or(defaults.tcp_be_liberal),
            udp_timeout: duration("udp-timeout", &c.conntrack_udp_timeout, defaults.udp_timeout)?,
            udp_stream_timeout: duration(
                "udp-timeout-stream",
                &c.conntrack_udp_timeout_stream,
                defaults.udp_stream_timeout,
            )?,
        })
    }

    /// `nf_conntrack_max` on a node with `cpus` CPUs: `max_per_core × cpus`, at least
    /// `min` (upstream's `getConntrackMax`); `None` when `max_per_core` is 0.
    pub fn max_for(&self, cpus: usize) -> Option<u64> {
        let scaled = u64::from(self.max_per_core) * u64::try_from(cpus).unwrap_or(u64::MAX);
        (self.max_per_core > 0).then(|| scaled.max(u64::from(self.min)))
    }

    /// The file's `conntrack:` section for these settings.
    pub(super) fn to_file(self) -> Conntrack {
        let duration = |d: Duration| Some(format_go_duration(d));
        Conntrack {
            max_per_core: i32::try_from(self.max_per_core).ok(),
            min: i32::try_from(self.min).ok(),
            tcp_established_timeout: duration(self.tcp_established_timeout),
            tcp_close_wait_timeout: duration(self.tcp_close_wait_timeout),
            tcp_be_liberal: Some(self.tcp_be_liberal),
            udp_timeout: duration(self.udp_timeout),
            udp_stream_timeout: duration(self.udp_stream_timeout),
        }
    }
}

impl Conntrack {
    /// This section as a layer.
    pub(super) fn to_layer(&self) -> PartialConfig {
        PartialConfig {
            conntrack_max_per_core: self.max_per_core,
            conntrack_min: self.min,
            conntrack_tcp_timeout_established: self.tcp_established_timeout.clone(),
            conntrack_tcp_timeout_close_wait: self.tcp_close_wait_timeout.clone(),
            conntrack_tcp_be_liberal: self.tcp_be_liberal,
            conntrack_udp_timeout: self.udp_timeout.clone(),
            conntrack_udp_timeout_stream: self.udp_stream_timeout.clone(),
            ..PartialConfig::default()
        }
    }
}

fn invalid(message: String) -> ConfigError {
    ConfigError::Invalid(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nf_conntrack_max_scales_with_cpus_above_the_floor() {
        let config = ConntrackConfig::default();
        assert_eq!(config.max_for(2), Some(131_072), "the floor");
        assert_eq!(config.max_for(8), Some(262_144));
        assert_eq!(ConntrackConfig { max_per_core: 0, ..config }.max_for(64), None, "0 leaves it alone");
    }

    #[test]
    fn flags_are_checked_and_written_back_as_upstream_spells_them() {
        let layer = PartialConfig {
            conntrack_max_per_core: Some(0),
            conntrack_tcp_timeout_established: Some("2h".to_owned()),
            conntrack_tcp_be_liberal: Some(true),
            ..PartialConfig::default()
        };
        let config = ConntrackConfig::validate(&layer).expect("valid");
        assert_eq!((config.max_per_core, config.min), (0, 131_072));
        assert_eq!(config.tcp_established_timeout, Duration::from_secs(7200));
        assert!(config.tcp_be_liberal);
        let file = config.to_file();
        assert_eq!(file.tcp_established_timeout.as_deref(), Some("2h0m0s"));
        assert_eq!(ConntrackConfig::validate(&file.to_layer()), Ok(config), "the file loads back");
        let negative = PartialConfig { conntrack_min: Some(-1), ..PartialConfig::default() };
        assert!(ConntrackConfig::validate(&negative).is_err());
        let bad = PartialConfig { conntrack_udp_timeout: Some("soon".to_owned()), ..PartialConfig::default() };
        assert!(ConntrackConfig::validate(&bad).is_err());
    }
}
