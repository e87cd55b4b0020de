//! Field parsers shared by the object conversions.

use std::net::IpAddr;

use ipnet::IpNet;

use super::validation::NameRule;
use crate::error::{ConversionError, Invalid, ObjectKind};
use crate::names::{NamespacedName, Protocol};

/// Parses the fields of one object, naming it in every error.
pub(crate) struct FieldParser<'a> {
    pub(crate) kind: ObjectKind,
    pub(crate) object: &'a NamespacedName,
}

impl FieldParser<'_> {
    pub(crate) fn error(&self, field: impl Into<String>, reason: Invalid) -> ConversionError {
        ConversionError::new(self.kind, self.object, field, reason)
    }

    /// A name that must satisfy `rule`; an empty one the rule rejects is missing.
    pub(crate) fn name(&self, field: impl Into<String>, value: &str, rule: NameRule) -> Result<(), ConversionError> {
        match rule.accepts(value) {
            true => Ok(()),
            false if value.is_empty() => Err(self.error(field, Invalid::Missing)),
            false => Err(self.error(field, Invalid::Name { rule, value: value.to_owned() })),
        }
    }

    /// An IP address; surrounding white space is tolerated, leading zeros are not.
    pub(crate) fn ip(&self, field: impl Into<String>, text: &str) -> Result<IpAddr, ConversionError> {
        text.trim().parse().map_err(|_| self.error(field, Invalid::Ip(text.to_owned())))
    }

    /// A CIDR; white space padding is tolerated, as upstream does for source ranges.
    pub(crate) fn cidr(&self, field: impl Into<String>, text: &str) -> Result<IpNet, ConversionError> {
        let trimmed = text.trim();
        trimmed
            .parse::<IpNet>()
            .or_else(|_| trimmed.parse::<IpAddr>().map(IpNet::from))
            .map(|net| net.trunc())
            .map_err(|_| self.error(field, Invalid::Cidr(text.to_owned())))
    }

    /// A port number 1..=65535.
    pub(crate) fn port(&self, field: impl Into<String>, value: i32) -> Result<u16, ConversionError> {
        match u16::try_from(value) {
            Ok(port) if port != 0 => Ok(port),
            _ => Err(self.error(field, Invalid::Port(i64::from(value)))),
        }
    }

    /// An optional port where 0 and absence both mean "none".
    pub(crate) fn optional_port(
        &self,
        field: impl Into<String>,
        value: Option<i32>,
    ) -> Result<Option<u16>, ConversionError> {
        match value {
            None | Some(0) => Ok(None),
            Some(v) => self.port(field, v).map(Some),
        }
    }

    /// A protocol, TCP when absent (the API's default).
    pub(crate) fn protocol(&self, field: impl Into<String>, value: Option<&str>) -> Result<Protocol, ConversionError> {
        match value {
            None | Some("") => Ok(Protocol::Tcp),
            Some(text) => text.parse().map_err(|_| self.error(field, Invalid::Protocol(text.to_owned()))),
        }
    }
}
