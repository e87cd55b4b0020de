//! Applying renders: turning them into nft transactions: a full load, or the difference between what was
//! committed and what is wanted for the service ports that changed.

mod committed;
mod listing;
mod packed;
mod script;

pub(crate) use committed::Committed;
#[cfg(test)]
pub(crate) use committed::Delta;
pub(crate) use listing::existing_objects;
pub(crate) use script::{FullScript, cleanup_script, partial_script, replace_script};
