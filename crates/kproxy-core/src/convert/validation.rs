//! The apiserver's naming rules (apimachinery's `pkg/util/validation` and
//! `pkg/api/validate/content`), as pure functions.
//!
//! Every rule admits only printable ASCII from a small alphabet, so a name that passes can
//! be written into nft or iptables rule text, comments and log lines as it is.

use std::fmt;

/// The longest DNS-1123 or DNS-1035 label, and the longest label value.
pub const MAX_LABEL_LENGTH: usize = 63;
/// The longest DNS-1123 subdomain.
pub const MAX_SUBDOMAIN_LENGTH: usize = 253;

/// A naming rule of the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameRule {
    /// RFC 1123 label (`IsDNS1123Label`): namespaces, port names.
    Dns1123Label,
    /// RFC 1123 subdomain (`IsDNS1123Subdomain`): EndpointSlice and Node names.
    Dns1123Subdomain,
    /// RFC 1035 label (`IsDNS1035Label`): Service names.
    Dns1035Label,
    /// Label value (`IsValidLabelValue`), which may be empty: zones.
    LabelValue,
    /// Label key, an optional DNS subdomain prefix and `/` before a name (`IsQualifiedName`).
    LabelKey,
}

impl NameRule {
    /// Whether `value` satisfies the rule.
    pub fn accepts(self, value: &str) -> bool {
        match self {
            Self::Dns1123Label => is_dns1123_label(value),
            Self::Dns1123Subdomain => is_dns1123_subdomain(value),
            Self::Dns1035Label => is_dns1035_label(value),
            Self::LabelValue => is_label_value(value),
            Self::LabelKey => is_label_key(value),
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::Dns1123Label => {
                "DNS-1123 label (at most 63 characters: lower-case letters, digits and '-', \
                 starting and ending with a letter or digit)"
            }
            Self::Dns1123Subdomain => "DNS-1123 subdomain (at most 253 characters: DNS-1123 labels joined by '.')",
            Self::Dns1035Label => {
                "DNS-1035 label (at most 63 characters: lower-case letters, digits and '-', \
                 starting with a letter and ending with a letter or digit)"
            }
            Self::LabelValue => {
                "label value (empty, or at most 63 characters: letters, digits, '-', '_' and '.', \
                 starting and ending with a letter or digit)"
            }
            Self::LabelKey => {
                "label key (an optional DNS-1123 subdomain and '/', then at most 63 characters: \
                 letters, digits, '-', '_' and '.', starting and ending with a letter or digit)"
            }
        }
    }
}

impl fmt::Display for NameRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

fn is_lower_alphanumeric(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, of any length.
fn is_dns1123_label_shape(value: &str) -> bool {
    let bytes = value.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            is_lower_alphanumeric(first)
                && is_lower_alphanumeric(last)
                && bytes.iter().all(|&b| is_lower_alphanumeric(b) || b == b'-')
        }
        _ => false,
    }
}

/// An RFC 1123 label: at most 63 characters of `[-a-z0-9]`, starting and ending with a
/// letter or digit.
pub fn is_dns1123_label(value: &str) -> bool {
    value.len() <= MAX_LABEL_LENGTH && is_dns1123_label_shape(value)
}

/// An RFC 1123 subdomain: at most 253 characters, RFC 1123 labels (of any length) joined
/// by dots.
pub fn is_dns1123_subdomain(value: &str) -> bool {
    value.len() <= MAX_SUBDOMAIN_LENGTH && value.split('.').all(is_dns1123_label_shape)
}

/// An RFC 1035 label: an RFC 1123 label that starts with a letter.
pub fn is_dns1035_label(value: &str) -> bool {
    is_dns1123_label(value) && value.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, of any length.
fn is_label_name_shape(value: &str) -> bool {
    let bytes = value.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// A label value: empty, or at most 63 characters of `[-A-Za-z0-9_.]` starting and ending
/// with a letter or digit.
pub fn is_label_value(value: &str) -> bool {
    value.is_empty() || (value.len() <= MAX_LABEL_LENGTH && is_label_name_shape(value))
}

/// A label key (upstream's "qualified name"): a name of at most 63 characters of
/// `[-A-Za-z0-9_.]` starting and ending with a letter or digit, optionally after a
/// DNS-1123 subdomain prefix and a `/`.
pub fn is_label_key(value: &str) -> bool {
    let (prefix, name) = match value.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    prefix.is_none_or(is_dns1123_subdomain) && name.len() <= MAX_LABEL_LENGTH && is_label_name_shape(name)
}

#[cfg(test)]
#[path = "validation_tests.rs"]
mod tests;
