//! The name of a network interface, as configuration gives it.

use std::fmt;

/// An interface name or name prefix: 1 to 15 bytes of ASCII letters, digits, `.`, `_`, `-`
/// (so it can never change the meaning of the rule text it is written into). Used by
/// `--detect-local-mode BridgeInterface` and `InterfaceNamePrefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceName(String);

impl InterfaceName {
    /// Checks `name`; the error says what is wrong.
    pub fn parse(name: &str) -> Result<Self, String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if name.is_empty() || name.len() > 15 {
            return Err(format!("interface name {name:?}: must be 1 to 15 characters"));
        }
        if !name.chars().all(allowed) {
            return Err(format!("interface name {name:?}: only letters, digits, '.', '_' and '-' are allowed"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked() {
        assert_eq!(InterfaceName::parse("cni0").unwrap().as_str(), "cni0");
        assert_eq!(InterfaceName::parse("veth_a.b-1").unwrap().to_string(), "veth_a.b-1");
        assert!(InterfaceName::parse("").is_err());
        assert!(InterfaceName::parse("a-very-long-name0").is_err(), "16 characters");
        for bad in ["veth\"", "br 0", "eth0;", "x*", "x+", "a/b", "é", "a\nb"] {
            assert!(InterfaceName::parse(bad).is_err(), "{bad}");
        }
    }
}
