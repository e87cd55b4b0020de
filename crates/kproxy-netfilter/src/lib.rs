//! Netfilter tools behind seams: every kernel change a kproxy dataplane makes goes through
//! one of these traits, so that rendering and diffing are tested against fakes.
//!
//! - [`NftRunner`]: runs an `nft -f -` transaction ([`ExecNft`], [`FakeNft`]).
//! - [`Conntrack`]: deletes conntrack flows ([`NetlinkConntrack`] over ctnetlink, no
//!   `conntrack` binary; [`FakeConntrack`]).
//! - [`Nfacct`]: creates and reads nfacct packet counters ([`NetlinkNfacct`],
//!   [`FakeNfacct`]).
//! - [`IptablesRunner`]: `iptables-restore --noflush` and `iptables-save` ([`ExecIptables`],
//!   [`FakeIptables`]), legacy or nft ([`IptablesBackend`]).
//!
//! [`nft_text`] writes the pieces of nft text the nft-based dataplanes share (family words,
//! elements, chains); [`NodePortAddresses`] is which addresses accept node ports;
//! [`LocalDetect`] is how traffic from this node's pods is recognised.
//!
//! [`quote`] turns text from API objects (namespaces, names, port names) into pieces of nft
//! and `iptables-restore` input that always parse as what the renderer meant.
//!
//! Each real runner can run inside a named network namespace (`ip netns exec`), which is
//! how tests program a namespace they created without touching the host's.

mod command;
mod conntrack;
mod iptables;
mod local_detect;
mod nfacct;
mod nfnetlink;
mod nft;
mod nft_counter;
mod nft_recording;
pub mod nft_text;
pub mod quote;

pub use command::{CommandError, Netns, Text, WriteInput, input_text};
pub use conntrack::{Conntrack, FakeConntrack, Flow, FlowFilter, NetlinkConntrack, Tuple, delete_stale_flows};
pub use iptables::{ExecIptables, FakeIptables, IptablesBackend, IptablesRunner};
pub use kproxy_core::{NodePortAddresses, config_for_node};
pub use local_detect::{InterfaceName, LocalDetect, cidrs_of, local_cidrs_for_node};
pub use nfacct::{CT_STATE_INVALID_DROPPED, FakeNfacct, LOCALHOST_NODEPORTS_ACCEPTED, NetlinkNfacct, Nfacct};
pub use nft::{ExecNft, FakeNft, NftRunner};
pub use nft_counter::named_counter_packets;
pub use nft_recording::{RecordedScript, RecordingNft};
pub use quote::{iptables_comment, nft_comment, nft_name, nft_name_part};

/// The fwmark bit marking packets to masquerade by default: upstream's
/// `--iptables-masquerade-bit` 14.
pub const DEFAULT_MASQUERADE_MARK: u32 = 1 << 14;
