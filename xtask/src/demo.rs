//! `cargo xtask demo`: kproxy on a demo cluster made of network namespaces.

/// Not yet available: the demo needs a kernel dataplane.
pub(crate) fn run() -> anyhow::Result<()> {
    println!("kproxy demo: not yet available (it arrives with the nftables dataplane)");
    Ok(())
}
