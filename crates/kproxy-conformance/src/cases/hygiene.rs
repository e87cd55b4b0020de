//! Cluster-IP hygiene, as upstream's nftables mode does it (`cluster-ips-check`): after
//! DNAT, a new connection still addressed to an active cluster IP asked for a port no
//! Service has and is refused; one addressed to an unallocated address of the service CIDRs
//! is dropped instead of being routed on.

use std::net::Ipv4Addr;

use kproxy_testkit::service_cidr;

use super::support::{Want, all_pods, at, converge, expect_no_answer, expect_spread, http_eps, svc};
use super::{CaseError, CaseResult};
use crate::plan::{self, CLIENT, NODE1, POD1A, POD1B, PORT_HTTP};
use crate::{Harness, Proto};

/// The ServiceCIDR the case applies: the plan's service CIDRs.
const SERVICE_CIDR_NAME: &str = "kubernetes";

/// An active cluster IP's unknown port is refused; an unallocated address of the service
/// CIDR, which node1 would route to pod1b, times out while the ServiceCIDR exists.
pub(super) async fn cluster_ip_hygiene(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    let stray = h.alloc_cluster_ipv4();
    h.apply_service(svc("hygiene", ip).tcp("http", 80).build()).await?;
    h.apply_slice(http_eps("hygiene", &plan::PODS).build()).await?;
    StrayAddress { ip: stray }.add(h)?;
    let result = checks(h, ip, stray).await;
    let removed = StrayAddress { ip: stray }.remove(h);
    result?;
    removed.map_err(CaseError::from)
}

async fn checks(h: &mut Harness, ip: Ipv4Addr, stray: Ipv4Addr) -> CaseResult {
    // Without a ServiceCIDR nothing says the stray address is unallocated: node1 routes it.
    converge(h, Proto::Tcp, POD1A.name, at(stray, PORT_HTTP), &[POD1B.name]).await?;
    let v6 = plan::SERVICE_CIDR_V6.to_string();
    h.apply_service_cidr(service_cidr(SERVICE_CIDR_NAME, &[plan::SERVICE_CIDR, &v6])).await?;
    // The checks run after DNAT: the service port itself is untouched.
    expect_spread(h, Proto::Tcp, POD1A.name, at(ip, 80), &all_pods()).await?;
    converge(h, Proto::Tcp, NODE1, at(ip, 80), &all_pods()).await?;
    for from in [POD1A.name, NODE1, CLIENT] {
        expect_no_answer(h, Proto::Tcp, from, at(ip, PORT_HTTP), Want::Refused).await?;
        expect_no_answer(h, Proto::Tcp, from, at(stray, PORT_HTTP), Want::TimedOut).await?;
    }
    // The ServiceCIDR gone, the address is not known to be a service address any more.
    h.delete_service_cidr(SERVICE_CIDR_NAME).await?;
    converge(h, Proto::Tcp, POD1A.name, at(stray, PORT_HTTP), &[POD1B.name]).await?;
    Ok(())
}

/// An address of the service CIDR that no Service has, given to pod1b and routed to it by
/// node1: where traffic to an unallocated cluster IP leaks unless it is dropped.
struct StrayAddress {
    ip: Ipv4Addr,
}

impl StrayAddress {
    fn add(&self, h: &Harness) -> Result<(), crate::Error> {
        let host = self.host();
        h.cluster().exec(POD1B.name, "ip", &["addr", "add", &host, "dev", "eth0"])?;
        h.cluster().exec(NODE1, "ip", &["route", "add", &host, "dev", POD1B.name, "scope", "link"]).map(drop)
    }

    /// Removes both, also when one of them is already gone.
    fn remove(&self, h: &Harness) -> Result<(), crate::Error> {
        let host = self.host();
        let routed = h.cluster().exec(NODE1, "ip", &["route", "del", &host, "dev", POD1B.name]);
        h.cluster().exec(POD1B.name, "ip", &["addr", "del", &host, "dev", "eth0"])?;
        routed.map(drop)
    }

    /// `ip/32`.
    fn host(&self) -> String {
        format!("{}/32", self.ip)
    }
}
