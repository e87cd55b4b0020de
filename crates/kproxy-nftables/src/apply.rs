//! Applying renders: turning them into nft transactions: a full load, or the difference between what was
//! committed and what is wanted for the service ports that changed.

mod committed;
mod full_load;
mod listing;
mod packed;
mod script;

pub(crate) use committed::Committed;
#[cfg(test)]
pub(crate) use committed::Delta;
pub(crate) use full_load::FullLoad;
pub(crate) use listing::existing_objects;
pub(crate) use script::{cleanup_script, partial_script, replace_script};
