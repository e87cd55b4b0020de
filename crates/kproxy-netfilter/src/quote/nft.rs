//! nft input: chain and set names, and quoted strings.
//!
//! nft reads a name unquoted only: `add chain ip t "a b"` is a syntax error (nft 1.0), so a
//! name must be an identifier of nft's scanner, `({letter}|[_.])({letter}|{digit}|[/\-_.])*`,
//! that is not a keyword (every renderer prefix — `affinity-`, `endpoint-`, … — makes sure
//! of the latter). The kernel limits names to 255 bytes and comments to 128.

use std::borrow::Cow;

use super::{digest16, printable_ascii};

/// The longest chain or set name nft accepts (`NFT_NAME_MAXLEN`, 256 with its NUL).
pub const NFT_NAME_MAX: usize = 255;

/// The longest comment nft accepts (`NFTNL_UDATA_COMMENT_MAXLEN`).
pub const NFT_COMMENT_MAX: usize = 128;

/// Longest readable head kept in front of the hash of an unsafe name part.
const PART_HEAD_MAX: usize = 32;

/// Whether nft's scanner reads `c` inside an unquoted identifier.
fn identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.')
}

/// Whether nft's scanner starts an unquoted identifier with `c`.
fn identifier_start(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, '_' | '.')
}

/// Whether `c` stays as it is in a name part: what Kubernetes names are made of
/// (`[a-z0-9-]`, and `.` of DNS subdomains), upper case, never `/` (which separates
/// parts) nor `_` (which marks a hashed part).
fn part_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.')
}

/// One piece of object text (a namespace, a Service name, a port name) to put into a chain
/// or set name between `/` separators.
///
/// Text of `[A-Za-z0-9.-]` only (every valid Kubernetes name) is kept as it is. Anything
/// else becomes its safe characters (at most 32) followed by `_` and a hash of the whole
/// text: the `_` tells hashed parts from kept ones, and the hash tells hashed parts apart,
/// so different texts always give different parts, and a part never holds a `/`.
pub fn nft_name_part(text: &str) -> Cow<'_, str> {
    if text.chars().all(part_char) {
        return Cow::Borrowed(text);
    }
    let head: String = text.chars().filter(|c| part_char(*c)).take(PART_HEAD_MAX).collect();
    Cow::Owned(format!("{head}_{}", digest16(text)))
}

/// A whole chain or set name, as nft reads it unquoted.
///
/// A name that is an nft identifier of at most [`NFT_NAME_MAX`] bytes is kept as it is.
/// Otherwise its characters nft would not read become `_`, it is cut so that `-` and a
/// hash of the whole name fit in 255 bytes, and the hash is appended: the result always
/// parses, and names that differ stay apart (names that differ only after the cut differ in
/// the hash). Composite names (`external-local-to-…-via-…`) reach 350 characters with long
/// namespace and Service names.
///
/// `name` must begin with the renderer's prefix (`affinity-`, …): a bare nft keyword such as
/// `tcp` would not parse, and only the caller knows which words are its own.
pub fn nft_name(name: &str) -> String {
    let mut chars = name.chars();
    let identifier = chars.next().is_some_and(identifier_start) && chars.all(identifier_char);
    if identifier && name.len() <= NFT_NAME_MAX {
        return name.to_owned();
    }
    let hash = digest16(name);
    let mut head: String = name.chars().map(|c| if identifier_char(c) { c } else { '_' }).collect();
    if !head.starts_with(identifier_start) {
        head.insert(0, '_');
    }
    // Only ASCII is left: every index is a character boundary.
    head.truncate(NFT_NAME_MAX - hash.len() - 1);
    format!("{head}-{hash}")
}

/// `text` as an nft quoted string (`"…"`), for comments: nft strings have no escapes and
/// end at the first `"` (nft 1.0 also reads `\"` as part of a string), so `"` and `\`
/// become `?`, as does everything but printable ASCII (control characters, newlines,
/// non-ASCII). At most [`NFT_COMMENT_MAX`] bytes between the quotes.
pub fn nft_comment(text: &str) -> String {
    let body: String =
        printable_ascii(text, NFT_COMMENT_MAX).chars().map(|c| if matches!(c, '"' | '\\') { '?' } else { c }).collect();
    format!("\"{body}\"")
}
