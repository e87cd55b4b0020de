//! Pieces of nft text every nft-based dataplane writes the same way: the words that differ
//! between `ip` and `ip6` tables, set and map elements, `add`/`delete element` commands and
//! chains in `nft list` layout. Text from API objects goes through [`crate::quote`] first.

use std::fmt::{Display, Write};
use std::net::IpAddr;

use kproxy_core::IpFamily;

/// nft syntax for one IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family(pub IpFamily);

impl Family {
    /// The table family keyword and address match keyword: `ip` or `ip6`.
    pub fn keyword(self) -> &'static str {
        match self.0 {
            IpFamily::V4 => "ip",
            IpFamily::V6 => "ip6",
        }
    }

    /// The address data type: `ipv4_addr` or `ipv6_addr`.
    pub fn addr_type(self) -> &'static str {
        match self.0 {
            IpFamily::V4 => "ipv4_addr",
            IpFamily::V6 => "ipv6_addr",
        }
    }

    /// The loopback range, which never accepts node ports.
    pub fn loopback(self) -> &'static str {
        match self.0 {
            IpFamily::V4 => "127.0.0.0/8",
            IpFamily::V6 => "::1",
        }
    }

    /// An address and port as a DNAT target: `10.0.0.1:80` or `[fd00::1]:80`.
    pub fn socket(self, ip: IpAddr, port: u16) -> String {
        match ip {
            IpAddr::V4(v4) => format!("{v4}:{port}"),
            IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        }
    }
}

/// One element of a set (`key`) or map (`key : value`).
pub fn element_text(key: &str, value: Option<impl Display>) -> String {
    match value {
        Some(value) => format!("{key} : {value}"),
        None => key.to_owned(),
    }
}

/// `VERB element TABLE SET { a, b, … }` commands for `items` (element texts), at most
/// `per_command` items each, so that no line outgrows nft's input buffer.
pub fn write_elements(out: &mut String, verb: &str, table: &str, set: &str, items: &[&str], per_command: usize) {
    for chunk in items.chunks(per_command.max(1)) {
        let _ = writeln!(out, "{verb} element {table} {set} {{ {} }}", chunk.join(", "));
    }
}

/// A chain as `nft list` shows it inside a table block: `\tchain NAME {`, the hook line of
/// a base chain, one line per rule, `\t}`.
pub fn write_chain<R: AsRef<str>>(
    out: &mut String,
    name: &str,
    hook: Option<&str>,
    rules: impl IntoIterator<Item = R>,
) {
    let _ = writeln!(out, "\tchain {name} {{");
    if let Some(hook) = hook {
        let _ = writeln!(out, "\t\t{hook}");
    }
    for rule in rules {
        let _ = writeln!(out, "\t\t{}", rule.as_ref());
    }
    out.push_str("\t}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_words() {
        assert_eq!(Family(IpFamily::V4).keyword(), "ip");
        assert_eq!(Family(IpFamily::V6).keyword(), "ip6");
        assert_eq!(Family(IpFamily::V6).addr_type(), "ipv6_addr");
        assert_eq!(Family(IpFamily::V4).socket("10.0.0.1".parse().unwrap(), 80), "10.0.0.1:80");
        assert_eq!(Family(IpFamily::V6).socket("fd00::1".parse().unwrap(), 80), "[fd00::1]:80");
    }

    #[test]
    fn map_elements_have_a_value_and_set_elements_none() {
        assert_eq!(element_text("tcp . 30080", Some(40001)), "tcp . 30080 : 40001");
        assert_eq!(element_text("10.0.0.1", None::<&str>), "10.0.0.1");
    }

    #[test]
    fn element_commands_are_chunked() {
        let mut out = String::new();
        write_elements(&mut out, "add", "ip t", "s", &["a", "b", "c"], 2);
        assert_eq!(out, "add element ip t s { a, b }\nadd element ip t s { c }\n");
        let mut none = String::new();
        write_elements(&mut none, "delete", "ip t", "s", &[], 2);
        assert_eq!(none, "");
    }

    #[test]
    fn chains_are_laid_out_as_nft_lists_them() {
        let mut out = String::new();
        write_chain(&mut out, "nat-output", Some("type nat hook output priority -100; policy accept;"), ["jump x"]);
        write_chain(&mut out, "empty", None, Vec::<String>::new());
        assert_eq!(
            out,
            "\tchain nat-output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tjump x\n\t}\n\tchain empty {\n\t}\n"
        );
    }
}
