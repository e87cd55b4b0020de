//! The seam between the sync engine and the kernel: the maps a sync writes.
//!
//! [`crate::kernel`] implements [`Maps`] on the real BPF maps; [`FakeMaps`] keeps them in
//! memory, logs every write and checks after each one that no exposed slot is a hole.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use crate::layout::{KpAddr, KpEndpointKey, KpExternal, KpRangeKey, KpService, KpServiceKey};

/// A map write that failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} on map {map}: {message}")]
pub struct MapError {
    /// `insert` or `remove`.
    pub op: &'static str,
    /// The map's name.
    pub map: &'static str,
    /// What the kernel said.
    pub message: String,
}

/// What the maps held when they were opened: empty for fresh maps, a previous kproxy's
/// entries for maps it pinned. Read once, at load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contents {
    /// `kp_services`.
    pub services: BTreeMap<KpServiceKey, KpService>,
    /// `kp_external`.
    pub external: BTreeMap<KpServiceKey, KpExternal>,
    /// `kp_endpoints`.
    pub endpoints: BTreeMap<KpEndpointKey, KpAddr>,
    /// `kp_ranges`.
    pub ranges: BTreeSet<KpRangeKey>,
}

impl Contents {
    /// Whether every map was empty.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.external.is_empty() && self.endpoints.is_empty() && self.ranges.is_empty()
    }
}

/// The writes a sync makes. Removing an absent key succeeds.
pub trait Maps: Send {
    /// Everything the maps hold now (read when they are opened, never to sync).
    fn contents(&self) -> Result<Contents, MapError>;
    /// Sets a service address.
    fn put_service(&mut self, key: &KpServiceKey, value: &KpService) -> Result<(), MapError>;
    /// Removes a service address.
    fn delete_service(&mut self, key: &KpServiceKey) -> Result<(), MapError>;
    /// Sets an endpoint slot.
    fn put_endpoint(&mut self, key: &KpEndpointKey, value: &KpAddr) -> Result<(), MapError>;
    /// Removes an endpoint slot.
    fn delete_endpoint(&mut self, key: &KpEndpointKey) -> Result<(), MapError>;
    /// Sets a service address for traffic from outside (`kp_external`).
    fn put_external(&mut self, key: &KpServiceKey, value: &KpExternal) -> Result<(), MapError>;
    /// Removes a service address for traffic from outside.
    fn delete_external(&mut self, key: &KpServiceKey) -> Result<(), MapError>;
    /// Adds a source range (`kp_ranges`).
    fn put_range(&mut self, key: &KpRangeKey) -> Result<(), MapError>;
    /// Removes a source range.
    fn delete_range(&mut self, key: &KpRangeKey) -> Result<(), MapError>;
}

/// One write, as [`FakeMaps`] logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// `put_service`.
    PutService(KpServiceKey, KpService),
    /// `delete_service`.
    DeleteService(KpServiceKey),
    /// `put_endpoint`.
    PutEndpoint(KpEndpointKey, KpAddr),
    /// `delete_endpoint`.
    DeleteEndpoint(KpEndpointKey),
    /// `put_external`.
    PutExternal(KpServiceKey, KpExternal),
    /// `delete_external`.
    DeleteExternal(KpServiceKey),
    /// `put_range`.
    PutRange(KpRangeKey),
    /// `delete_range`.
    DeleteRange(KpRangeKey),
}

/// The contents of [`FakeMaps`].
#[derive(Debug, Clone, Default)]
pub struct FakeTables {
    /// `kp_services`.
    pub services: BTreeMap<KpServiceKey, KpService>,
    /// `kp_endpoints`.
    pub endpoints: BTreeMap<KpEndpointKey, KpAddr>,
    /// `kp_external`.
    pub external: BTreeMap<KpServiceKey, KpExternal>,
    /// `kp_ranges`.
    pub ranges: BTreeSet<KpRangeKey>,
    /// Every write, in order.
    pub log: Vec<Write>,
    /// Service addresses that, after some write, exposed a slot that did not exist.
    pub holes: Vec<String>,
    /// Fail every write after this many more have succeeded.
    pub fail_after: Option<usize>,
}

impl FakeTables {
    /// The endpoints `key` balances over, in slot order, as a program would see them.
    pub fn endpoints_of(&self, key: &KpServiceKey) -> Option<Vec<std::net::SocketAddr>> {
        let service = self.services.get(key)?;
        (0..service.count)
            .map(|slot| self.endpoints.get(&KpEndpointKey { service_id: service.id, slot }).map(KpAddr::socket_addr))
            .collect()
    }

    /// The endpoints `key` balances traffic from outside over, in slot order.
    pub fn external_endpoints_of(&self, key: &KpServiceKey) -> Option<Vec<std::net::SocketAddr>> {
        let service = self.external.get(key)?.service;
        (0..service.count)
            .map(|slot| self.endpoints.get(&KpEndpointKey { service_id: service.id, slot }).map(KpAddr::socket_addr))
            .collect()
    }

    fn check_holes(&mut self) {
        let external = self.external.iter().map(|(k, v)| (k, &v.service));
        for (key, service) in self.services.iter().chain(external) {
            let hole = (0..service.count)
                .any(|slot| !self.endpoints.contains_key(&KpEndpointKey { service_id: service.id, slot }));
            if hole {
                self.holes.push(format!("{} after write {}", key.socket_addr(), self.log.len()));
            }
        }
    }
}

/// In-memory maps shared with the test that made them.
#[derive(Debug, Clone, Default)]
pub struct FakeMaps {
    tables: Arc<Mutex<FakeTables>>,
}

impl FakeMaps {
    /// Empty maps.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the contents now.
    pub fn snapshot(&self) -> FakeTables {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Makes every write after the next `n` fail.
    pub fn fail_after(&self, n: Option<usize>) {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner).fail_after = n;
    }

    fn write(&self, map: &'static str, write: Write) -> Result<(), MapError> {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        match tables.fail_after {
            Some(0) => return Err(MapError { op: "write", map, message: "injected failure".to_owned() }),
            Some(ref mut n) => *n -= 1,
            None => {}
        }
        match &write {
            Write::PutService(k, v) => {
                tables.services.insert(*k, *v);
            }
            Write::DeleteService(k) => {
                tables.services.remove(k);
            }
            Write::PutEndpoint(k, v) => {
                tables.endpoints.insert(*k, *v);
            }
            Write::DeleteEndpoint(k) => {
                tables.endpoints.remove(k);
            }
            Write::PutExternal(k, v) => {
                tables.external.insert(*k, *v);
            }
            Write::DeleteExternal(k) => {
                tables.external.remove(k);
            }
            Write::PutRange(k) => {
                tables.ranges.insert(*k);
            }
            Write::DeleteRange(k) => {
                tables.ranges.remove(k);
            }
        }
        tables.log.push(write);
        tables.check_holes();
        Ok(())
    }
}

impl Maps for FakeMaps {
    fn contents(&self) -> Result<Contents, MapError> {
        let tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(Contents {
            services: tables.services.clone(),
            external: tables.external.clone(),
            endpoints: tables.endpoints.clone(),
            ranges: tables.ranges.clone(),
        })
    }

    fn put_service(&mut self, key: &KpServiceKey, value: &KpService) -> Result<(), MapError> {
        self.write("kp_services", Write::PutService(*key, *value))
    }

    fn delete_service(&mut self, key: &KpServiceKey) -> Result<(), MapError> {
        self.write("kp_services", Write::DeleteService(*key))
    }

    fn put_endpoint(&mut self, key: &KpEndpointKey, value: &KpAddr) -> Result<(), MapError> {
        self.write("kp_endpoints", Write::PutEndpoint(*key, *value))
    }

    fn delete_endpoint(&mut self, key: &KpEndpointKey) -> Result<(), MapError> {
        self.write("kp_endpoints", Write::DeleteEndpoint(*key))
    }

    fn put_external(&mut self, key: &KpServiceKey, value: &KpExternal) -> Result<(), MapError> {
        self.write("kp_external", Write::PutExternal(*key, *value))
    }

    fn delete_external(&mut self, key: &KpServiceKey) -> Result<(), MapError> {
        self.write("kp_external", Write::DeleteExternal(*key))
    }

    fn put_range(&mut self, key: &KpRangeKey) -> Result<(), MapError> {
        self.write("kp_ranges", Write::PutRange(*key))
    }

    fn delete_range(&mut self, key: &KpRangeKey) -> Result<(), MapError> {
        self.write("kp_ranges", Write::DeleteRange(*key))
    }
}
