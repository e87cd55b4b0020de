//! Rendering never trusts text: every string that comes from an API object (namespace,
//! Service name, port name, zone, node name, …) and reaches nft or `iptables-restore`
//! input goes through one of these functions, one per place such text can appear.
//!
//! | where                         | function              | guarantee                         |
//! |-------------------------------|-----------------------|-----------------------------------|
//! | piece of an nft chain/set name| [`nft_name_part`]     | `[A-Za-z0-9._-]`, no `/`, injective |
//! | whole nft chain/set name      | [`nft_name`]          | unquoted identifier, ≤ 255 bytes  |
//! | nft quoted string (comment)   | [`nft_comment`]       | one string, ≤ 128 bytes           |
//! | `iptables-restore --comment`  | [`iptables_comment`]  | one argument, ≤ 255 bytes         |
//!
//! Names stay readable when the text is already safe (what Kubernetes' validation admits
//! always is); otherwise the unsafe text is replaced by a stable hash of it (SHA-256), so
//! the result parses and still differs from the result of any other text. Strings (that
//! only label rules) keep printable ASCII and replace the rest by `?`.
//!
//! All functions are pure.

mod iptables;
mod nft;

pub use iptables::{IPTABLES_COMMENT_MAX, iptables_comment};
pub use nft::{NFT_COMMENT_MAX, NFT_NAME_MAX, nft_comment, nft_name, nft_name_part};

use sha2::{Digest, Sha256};

/// The first 16 hex digits (64 bits) of SHA-256(`text`): stable across releases and runs,
/// and no one can pick a text whose digest matches another's.
fn digest16(text: &str) -> String {
    use std::fmt::Write;
    Sha256::digest(text.as_bytes()).iter().take(8).fold(String::with_capacity(16), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// Whether `c` is printable ASCII (space to `~`): what strings keep as it is.
fn printable(c: char) -> bool {
    (' '..='~').contains(&c)
}

/// Replaces what is not printable ASCII by `?` and keeps at most `max` characters (so at
/// most `max` bytes).
fn printable_ascii(text: &str, max: usize) -> String {
    text.chars().map(|c| if printable(c) { c } else { '?' }).take(max).collect()
}

#[cfg(test)]
mod tests;
