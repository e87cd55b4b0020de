//! Typed errors for API objects that cannot be used.

use std::fmt;

use crate::convert::NameRule;
use crate::names::NamespacedName;

/// The most characters of an offending value or object name an error message shows.
const SHOWN_CHARS: usize = 320;

/// The kind of API object a conversion error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// A core/v1 Service.
    Service,
    /// A discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice,
    /// A core/v1 Node.
    Node,
    /// A networking.k8s.io/v1 ServiceCIDR.
    ServiceCidr,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Service => "Service",
            Self::EndpointSlice => "EndpointSlice",
            Self::Node => "Node",
            Self::ServiceCidr => "ServiceCIDR",
        })
    }
}

/// Why a field's value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// A required field is absent or empty.
    #[error("required field is missing")]
    Missing,
    /// Not an IP address.
    #[error("{0:?} is not an IP address")]
    Ip(String),
    /// Not a CIDR.
    #[error("{0:?} is not a CIDR")]
    Cidr(String),
    /// A port number outside 1..=65535.
    #[error("port {0} is out of range 1-65535")]
    Port(i64),
    /// A protocol other than TCP, UDP or SCTP.
    #[error("unknown protocol {0:?}")]
    Protocol(String),
    /// An enumerated field holds a value the API does not define.
    #[error("unsupported value {0:?}")]
    Value(String),
    /// A number outside the range the API allows.
    #[error("{value} is out of range {min}-{max}")]
    Range {
        /// The value found.
        value: i64,
        /// The lowest value allowed.
        min: i64,
        /// The highest value allowed.
        max: i64,
    },
    /// A name or other string that breaks one of the API's naming rules.
    #[error("{} is not a valid {rule}", quoted(.value))]
    Name {
        /// The rule broken.
        rule: NameRule,
        /// The value found.
        value: String,
    },
    /// A value that must be unique within its list appears again.
    #[error("duplicate value {}", quoted(.0))]
    Duplicate(String),
}

/// `text` escaped and quoted, at most [`SHOWN_CHARS`] characters of it: safe in a log line.
fn quoted(text: &str) -> String {
    let mut shown: String = text.chars().take(SHOWN_CHARS).collect();
    if shown.len() < text.len() {
        shown.push_str("...");
    }
    format!("{shown:?}")
}

/// `object` as `namespace/name`, escaped when it holds anything but printable ASCII.
fn object_text(object: &NamespacedName) -> String {
    let text = object.to_string();
    let plain = text.len() <= SHOWN_CHARS && text.bytes().all(|b| b.is_ascii_graphic());
    if plain { text } else { quoted(&text) }
}

/// An API object that cannot be turned into model values. The object is skipped
/// (its previous state, if any, stays in force) and the error is logged once and counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {}: field {field}: {reason}", object_text(.object))]
pub struct ConversionError {
    /// What kind of object.
    pub kind: ObjectKind,
    /// Which object.
    pub object: NamespacedName,
    /// The path of the offending field, e.g. `spec.ports[1].port`.
    pub field: String,
    /// What is wrong with it.
    pub reason: Invalid,
}

impl ConversionError {
    /// Builds an error about `field` of `object`.
    pub fn new(kind: ObjectKind, object: &NamespacedName, field: impl Into<String>, reason: Invalid) -> Self {
        Self { kind, object: object.clone(), field: field.into(), reason }
    }
}
