//! Reading which chains and sets a table holds, from `nft list chains` and `nft -t list sets`.

use std::collections::BTreeSet;

/// Names of the chains and sets of table `family name` in an nft listing.
pub(crate) fn existing_objects(listing: &str, family: &str, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let header = format!("table {family} {name} {{");
    let mut chains = BTreeSet::new();
    let mut sets = BTreeSet::new();
    let mut inside = false;
    for line in listing.lines() {
        let line = line.trim();
        if line.starts_with("table ") {
            inside = line == header;
            continue;
        }
        if !inside {
            continue;
        }
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("chain"), Some(n), Some("{")) => {
                chains.insert(n.to_owned());
            }
            (Some("set" | "map"), Some(n), Some("{")) => {
                sets.insert(n.to_owned());
            }
            _ => {}
        }
    }
    (chains, sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_our_table() {
        let listing = "table ip other {\n\tchain x {\n\t}\n}\ntable ip kproxy {\n\tchain services {\n\t}\n\tchain nat-output {\n\t\ttype nat hook output priority -100; policy accept;\n\t}\n\tset affinity-a {\n\t\ttype ipv4_addr\n\t}\n}\n";
        let (chains, sets) = existing_objects(listing, "ip", "kproxy");
        assert_eq!(chains.into_iter().collect::<Vec<_>>(), ["nat-output", "services"]);
        assert_eq!(sets.into_iter().collect::<Vec<_>>(), ["affinity-a"]);
    }
}
