//! Detection settings: `[detect]` in the configuration file, one table per rule.
//!
//! Every threshold has a default chosen for a home network: benign traffic (web, DNS
//! through the home resolver, NTP, mDNS/SSDP, TLS to CDNs, a device's usual chatter)
//! must not raise anything of medium severity or higher. Windows and durations are
//! seconds of packet time.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    /// Run the detection stage at all (the `ng-detect` thread).
    pub enabled: bool,
    /// A repeat of an alert (same rule, device and peer) within this many seconds of its
    /// last occurrence bumps its count and last-seen time instead of opening a new one.
    pub dedup_window_secs: u64,
    /// Open alerts (active or acknowledged) not seen again for this long are marked
    /// `resolved`. 0 keeps them open until someone changes their state.
    pub resolve_after_secs: u64,
    /// MACs (`aa:bb:cc:dd:ee:ff`) of devices that should talk only to the local network
    /// (cameras, a NAS, a printer): rule `local_only_egress`.
    pub local_only_devices: Vec<String>,
    /// The home's DNS resolvers. Empty: the ones DHCP servers advertise (option 6) are
    /// learned from the traffic. Used by `dns_bypass` and to exclude resolver traffic
    /// from `beaconing`.
    pub dns_servers: Vec<IpAddr>,
    /// Ports that must not be reachable from the internet, nor used towards it (TCP and
    /// UDP): rule `high_risk_port`.
    pub high_risk_ports: Vec<u16>,
    /// Most keys (devices, peers, zones...) one rule tracks at a time; beyond it the
    /// least recently active are forgotten. Bounds memory under floods of spoofed sources.
    pub max_tracked: usize,
    pub high_risk_port: Toggle,
    pub dns_tunnel: DnsTunnelConfig,
    pub tls_anomaly: TlsAnomalyConfig,
    pub local_only_egress: Toggle,
    pub port_scan: PortScanConfig,
    pub host_scan: HostScanConfig,
    pub flood: FloodConfig,
    pub brute_force: BruteForceConfig,
    pub arp_spoof: ArpSpoofConfig,
    pub rogue_dhcp: RogueDhcpConfig,
    pub rogue_ra: RogueRaConfig,
    pub new_device: NewDeviceConfig,
    pub dga: DgaConfig,
    pub nxdomain_burst: NxdomainBurstConfig,
    pub dns_bypass: DnsBypassConfig,
    pub beaconing: BeaconingConfig,
    pub exfiltration: ExfiltrationConfig,
    pub cleartext_credentials: CleartextConfig,
    pub insecure_protocol: InsecureProtocolConfig,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            enabled: true,
            dedup_window_secs: 3600,
            resolve_after_secs: 7 * 86400,
            local_only_devices: Vec::new(),
            dns_servers: Vec::new(),
            // FTP, telnet, MS-RPC, NetBIOS, SMB, UPnP/SSDP, RDP, Android debug bridge, VNC.
            high_risk_ports: vec![21, 23, 135, 139, 445, 1900, 2323, 3389, 5555, 5900, 5901],
            max_tracked: 50_000,
            high_risk_port: Toggle::default(),
            dns_tunnel: DnsTunnelConfig::default(),
            tls_anomaly: TlsAnomalyConfig::default(),
            local_only_egress: Toggle::default(),
            port_scan: PortScanConfig::default(),
            host_scan: HostScanConfig::default(),
            flood: FloodConfig::default(),
            brute_force: BruteForceConfig::default(),
            arp_spoof: ArpSpoofConfig::default(),
            rogue_dhcp: RogueDhcpConfig::default(),
            rogue_ra: RogueRaConfig::default(),
            new_device: NewDeviceConfig::default(),
            dga: DgaConfig::default(),
            nxdomain_burst: NxdomainBurstConfig::default(),
            dns_bypass: DnsBypassConfig::default(),
            beaconing: BeaconingConfig::default(),
            exfiltration: ExfiltrationConfig::default(),
            cleartext_credentials: CleartextConfig::default(),
            insecure_protocol: InsecureProtocolConfig::default(),
        }
    }
}

/// A rule with no setting but its switch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Toggle {
    pub enabled: bool,
}

impl Default for Toggle {
    fn default() -> Self {
        Toggle { enabled: true }
    }
}

/// `dns_tunnel`: data carried in DNS names or TXT/NULL records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsTunnelConfig {
    pub enabled: bool,
    /// Counting window per device and zone.
    pub window_secs: u64,
    /// Distinct subdomains of one zone, most of them encoded-looking, that make a tunnel.
    pub unique_subdomains: usize,
    /// TXT or NULL queries to one zone (with at least 20 distinct names).
    pub txt_null_queries: usize,
    /// Encoded-looking queries from one device over all zones (tunnels whose zone is
    /// not a registered domain, e.g. dnscat2 talking to its server directly).
    pub encoded_queries: usize,
    /// Queries to one zone (with at least 50 distinct names): volume alone (medium).
    pub zone_queries: usize,
    /// A name is encoded-looking when its labels except the TLD (a last label of
    /// letters), dots left out, are at least this many characters...
    pub min_encoded_len: usize,
    /// ...and its characters' Shannon entropy is at least this many bits.
    pub min_entropy: f64,
    /// Zones never reported (reputation lookups of antivirus software, DNS blocklists).
    /// Reverse-lookup zones (`in-addr.arpa`, `ip6.arpa`) are always ignored.
    pub allow_zones: Vec<String>,
}

impl Default for DnsTunnelConfig {
    fn default() -> Self {
        DnsTunnelConfig {
            enabled: true,
            window_secs: 300,
            unique_subdomains: 100,
            txt_null_queries: 50,
            encoded_queries: 100,
            zone_queries: 1000,
            min_encoded_len: 24,
            min_entropy: 3.5,
            allow_zones: ["sophosxl.net", "mcafee.com", "spamhaus.org", "spamcop.net"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// `tls_anomaly`: handshakes that legitimate software rarely produces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsAnomalyConfig {
    pub enabled: bool,
    /// Window for counting one device's distinct server names.
    pub sni_churn_window_secs: u64,
    /// Distinct registrable domains in TLS server names within the window (low).
    pub sni_churn_distinct: usize,
    /// Report handshakes without a server name to internet addresses (low).
    pub missing_sni: bool,
    /// Report self-signed, expired, not-yet-valid and name-mismatched certificates of
    /// internet servers (medium; visible for TLS 1.2 and older only).
    pub certificates: bool,
}

impl Default for TlsAnomalyConfig {
    fn default() -> Self {
        TlsAnomalyConfig {
            enabled: true,
            sni_churn_window_secs: 300,
            sni_churn_distinct: 150,
            missing_sni: true,
            certificates: true,
        }
    }
}

/// `port_scan`: one source probing many ports of one host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortScanConfig {
    pub enabled: bool,
    pub window_secs: u64,
    /// Distinct ports of one host probed without an exchange of data (half-open,
    /// rejected, unanswered, or connect-and-close) within the window.
    pub min_ports: usize,
}

impl Default for PortScanConfig {
    fn default() -> Self {
        PortScanConfig {
            enabled: true,
            window_secs: 300,
            min_ports: 25,
        }
    }
}

/// `host_scan`: one source probing many hosts (a sweep).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostScanConfig {
    pub enabled: bool,
    pub window_secs: u64,
    /// Distinct hosts probed without an exchange of data within the window.
    pub min_hosts: usize,
}

impl Default for HostScanConfig {
    fn default() -> Self {
        HostScanConfig {
            enabled: true,
            window_secs: 300,
            min_hosts: 25,
        }
    }
}

/// `flood`: SYN, ICMP echo and UDP floods towards one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FloodConfig {
    pub enabled: bool,
    pub window_secs: u64,
    /// SYNs in half-open or rejected connections to one target.
    pub syn_packets: u64,
    /// ICMP echo requests to one target.
    pub icmp_packets: u64,
    /// UDP packets to one target in flows it did not answer (or barely).
    pub udp_packets: u64,
    /// SYN and UDP floods must also span this many flows (many source ports or
    /// addresses): one steady stream, like a camera's video, is not a flood.
    pub min_flows: u64,
    /// ...except a SYN flood in one flow (`hping3 -S -k`: one source port), reported
    /// when that flow's SYNs came at least this many times faster than `syn_packets`
    /// per `window_secs`, and an unanswered UDP flow from a home device to the internet
    /// this many times faster than `udp_packets` per `window_secs`. At least 1.
    pub single_flow_factor: f64,
}

impl Default for FloodConfig {
    fn default() -> Self {
        FloodConfig {
            enabled: true,
            window_secs: 60,
            syn_packets: 3000,
            icmp_packets: 3000,
            udp_packets: 10_000,
            min_flows: 50,
            single_flow_factor: 10.0,
        }
    }
}

/// `brute_force`: many short sessions to one authentication service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BruteForceConfig {
    pub enabled: bool,
    pub window_secs: u64,
    /// Short sessions from one source to one service within the window.
    pub min_sessions: usize,
    /// A session is short when it lasts at most this long...
    pub max_session_secs: f64,
    /// ...and each side sends at most this many payload bytes.
    pub max_session_bytes: u64,
    /// Rejected cleartext logins (FTP, POP3, IMAP replies) that also make a brute force.
    pub failed_logins: usize,
    /// Authentication services watched: SSH, telnet, FTP, RDP, VNC, POP3, IMAP.
    pub ports: Vec<u16>,
}

impl Default for BruteForceConfig {
    fn default() -> Self {
        BruteForceConfig {
            enabled: true,
            window_secs: 300,
            min_sessions: 20,
            max_session_secs: 30.0,
            max_session_bytes: 16 * 1024,
            failed_logins: 10,
            ports: vec![21, 22, 23, 110, 143, 2323, 3389, 5900],
        }
    }
}

/// `arp_spoof`: an IPv4 address claimed by a second MAC, or the route to the internet
/// moving to another MAC.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArpSpoofConfig {
    pub enabled: bool,
    /// Two MACs claiming one address within this many seconds is a conflict; a claim
    /// after a longer silence is an address that moved (DHCP reuse), not reported.
    pub conflict_window_secs: u64,
}

impl Default for ArpSpoofConfig {
    fn default() -> Self {
        ArpSpoofConfig {
            enabled: true,
            conflict_window_secs: 300,
        }
    }
}

/// `rogue_dhcp`: a second DHCP server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RogueDhcpConfig {
    pub enabled: bool,
    /// The legitimate DHCP servers (server identifier, option 54). Empty: the first
    /// server seen is taken as the legitimate one.
    pub allowed_servers: Vec<IpAddr>,
}

impl Default for RogueDhcpConfig {
    fn default() -> Self {
        RogueDhcpConfig {
            enabled: true,
            allowed_servers: Vec::new(),
        }
    }
}

/// `rogue_ra`: a second IPv6 router (router advertisements offering a default route).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RogueRaConfig {
    pub enabled: bool,
    /// MACs (`aa:bb:cc:dd:ee:ff`) of the legitimate IPv6 routers. Empty: the first
    /// router seen advertising a default route is taken as the legitimate one.
    pub allowed_routers: Vec<String>,
}

impl Default for RogueRaConfig {
    fn default() -> Self {
        RogueRaConfig {
            enabled: true,
            allowed_routers: Vec::new(),
        }
    }
}

/// `new_device`: a MAC never seen before (once per device).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewDeviceConfig {
    pub enabled: bool,
    /// Randomized (locally administered) MACs wait this long for a DHCP host name, so
    /// a known phone rejoining with a new private address is recognised, not reported.
    pub randomized_grace_secs: u64,
}

impl Default for NewDeviceConfig {
    fn default() -> Self {
        NewDeviceConfig {
            enabled: true,
            randomized_grace_secs: 60,
        }
    }
}

/// `dga`: names that look generated by malware.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DgaConfig {
    pub enabled: bool,
    pub window_secs: u64,
    /// Distinct DGA-looking registrable domains one device queries within the window.
    pub min_domains: usize,
    /// Share of them that must fail (NXDOMAIN) for high severity; with fewer failures
    /// three times `min_domains` are needed (medium).
    pub min_nxdomain_fraction: f64,
}

impl Default for DgaConfig {
    fn default() -> Self {
        DgaConfig {
            enabled: true,
            window_secs: 600,
            min_domains: 5,
            min_nxdomain_fraction: 0.5,
        }
    }
}

/// `nxdomain_burst`: many failed lookups from one device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NxdomainBurstConfig {
    pub enabled: bool,
    pub window_secs: u64,
    /// Distinct names answered NXDOMAIN within the window (low).
    pub min_names: usize,
    /// Medium when the failed names span at least this many registrable domains.
    pub medium_zones: usize,
}

impl Default for NxdomainBurstConfig {
    fn default() -> Self {
        NxdomainBurstConfig {
            enabled: true,
            window_secs: 60,
            min_names: 50,
            medium_zones: 25,
        }
    }
}

/// `dns_bypass`: name resolution around the home's resolvers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsBypassConfig {
    pub enabled: bool,
    /// Well-known DNS-over-HTTPS server names (TLS server name).
    pub doh_hosts: Vec<String>,
    /// Well-known public resolver addresses (DoH to them without a server name).
    pub doh_addresses: Vec<IpAddr>,
}

impl Default for DnsBypassConfig {
    fn default() -> Self {
        let hosts = [
            "dns.google",
            "dns.google.com",
            "dns64.dns.google",
            "cloudflare-dns.com",
            "mozilla.cloudflare-dns.com",
            "chrome.cloudflare-dns.com",
            "one.one.one.one",
            "1dot1dot1dot1.cloudflare-dns.com",
            "security.cloudflare-dns.com",
            "family.cloudflare-dns.com",
            "dns.quad9.net",
            "dns9.quad9.net",
            "dns10.quad9.net",
            "dns11.quad9.net",
            "doh.opendns.com",
            "doh.familyshield.opendns.com",
            "dns.nextdns.io",
            "doh.cleanbrowsing.org",
            "dns.adguard.com",
            "dns.adguard-dns.com",
            "doh.mullvad.net",
            "dns.mullvad.net",
            "doh.dns.sb",
            "dns.controld.com",
            "freedns.controld.com",
        ];
        let addrs = [
            "1.1.1.1",
            "1.0.0.1",
            "8.8.8.8",
            "8.8.4.4",
            "9.9.9.9",
            "149.112.112.112",
            "208.67.222.222",
            "208.67.220.220",
            "94.140.14.14",
            "94.140.15.15",
            "2606:4700:4700::1111",
            "2606:4700:4700::1001",
            "2001:4860:4860::8888",
            "2001:4860:4860::8844",
            "2620:fe::fe",
            "2620:fe::9",
        ];
        DnsBypassConfig {
            enabled: true,
            doh_hosts: hosts.map(String::from).to_vec(),
            doh_addresses: addrs
                .iter()
                .map(|a| a.parse().expect("valid default"))
                .collect(),
        }
    }
}

/// `beaconing`: a device connecting to one internet destination like clockwork.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BeaconingConfig {
    pub enabled: bool,
    /// Connections to one destination (address, port, protocol) needed (3 to 48: the
    /// most recent 48 are kept)...
    pub min_connections: usize,
    /// ...spanning at least this long.
    pub min_span_secs: u64,
    /// Largest jitter: (median absolute deviation of the intervals) / (median interval).
    pub max_jitter: f64,
    /// Periods shorter than this are ignored (bursts, retries).
    pub min_interval_secs: u64,
    /// Periods longer than this are ignored.
    pub max_interval_secs: u64,
}

impl Default for BeaconingConfig {
    fn default() -> Self {
        BeaconingConfig {
            enabled: true,
            min_connections: 24,
            min_span_secs: 1800,
            max_jitter: 0.1,
            min_interval_secs: 10,
            max_interval_secs: 6 * 3600,
        }
    }
}

/// `exfiltration`: a device sending far more than it usually does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExfiltrationConfig {
    pub enabled: bool,
    /// Length of one accounting period (upload bytes to the internet per device).
    pub bucket_secs: u64,
    /// Periods of history a device needs before it can be judged (its baseline; 1 to
    /// 168: the most recent 168 are kept).
    pub baseline_buckets: usize,
    /// A period is reported when it exceeds `factor` times the baseline's mean...
    pub factor: f64,
    /// ...and the mean plus six standard deviations...
    pub sigmas: f64,
    /// ...and this many bytes.
    pub min_bytes: u64,
}

impl Default for ExfiltrationConfig {
    fn default() -> Self {
        ExfiltrationConfig {
            enabled: true,
            bucket_secs: 3600,
            baseline_buckets: 24,
            factor: 10.0,
            sigmas: 6.0,
            min_bytes: 250_000_000,
        }
    }
}

/// `cleartext_credentials`: passwords readable on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CleartextConfig {
    pub enabled: bool,
    /// Also report anonymous FTP logins (user `anonymous` or `ftp`).
    pub anonymous_ftp: bool,
}

impl Default for CleartextConfig {
    fn default() -> Self {
        CleartextConfig {
            enabled: true,
            anonymous_ftp: false,
        }
    }
}

/// `insecure_protocol`: telnet, SMBv1, TLS older than 1.2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InsecureProtocolConfig {
    pub enabled: bool,
    /// Report TLS 1.1, 1.0 and SSL handshakes.
    pub old_tls: bool,
}

impl Default for InsecureProtocolConfig {
    fn default() -> Self {
        InsecureProtocolConfig {
            enabled: true,
            old_tls: true,
        }
    }
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`), any case.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.trim().split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        m[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

impl DetectConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, macs) in [
            ("detect.local_only_devices", &self.local_only_devices),
            (
                "detect.rogue_ra.allowed_routers",
                &self.rogue_ra.allowed_routers,
            ),
        ] {
            for m in macs {
                if parse_mac(m).is_none() {
                    return Err(ConfigError(format!(
                        "{key}: {m:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"
                    )));
                }
            }
        }
        let windows = [
            ("detect.dedup_window_secs", self.dedup_window_secs),
            ("detect.dns_tunnel.window_secs", self.dns_tunnel.window_secs),
            (
                "detect.tls_anomaly.sni_churn_window_secs",
                self.tls_anomaly.sni_churn_window_secs,
            ),
            ("detect.port_scan.window_secs", self.port_scan.window_secs),
            ("detect.host_scan.window_secs", self.host_scan.window_secs),
            ("detect.flood.window_secs", self.flood.window_secs),
            (
                "detect.brute_force.window_secs",
                self.brute_force.window_secs,
            ),
            (
                "detect.arp_spoof.conflict_window_secs",
                self.arp_spoof.conflict_window_secs,
            ),
            ("detect.dga.window_secs", self.dga.window_secs),
            (
                "detect.nxdomain_burst.window_secs",
                self.nxdomain_burst.window_secs,
            ),
            (
                "detect.beaconing.min_interval_secs",
                self.beaconing.min_interval_secs,
            ),
            (
                "detect.exfiltration.bucket_secs",
                self.exfiltration.bucket_secs,
            ),
        ];
        for (name, v) in windows {
            if v == 0 {
                return Err(ConfigError(format!("{name} must be at least 1 second")));
            }
        }
        for (name, v) in [
            (
                "detect.dga.min_nxdomain_fraction",
                self.dga.min_nxdomain_fraction,
            ),
            ("detect.beaconing.max_jitter", self.beaconing.max_jitter),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ConfigError(format!(
                    "{name} must be between 0 and 1, got {v}"
                )));
            }
        }
        if !(self.brute_force.max_session_secs.is_finite()
            && self.brute_force.max_session_secs > 0.0)
        {
            return Err(ConfigError(
                "detect.brute_force.max_session_secs must be a positive number".into(),
            ));
        }
        if !(self.exfiltration.factor.is_finite() && self.exfiltration.factor >= 1.0) {
            return Err(ConfigError(
                "detect.exfiltration.factor must be at least 1".into(),
            ));
        }
        if !(self.flood.single_flow_factor.is_finite() && self.flood.single_flow_factor >= 1.0) {
            return Err(ConfigError(format!(
                "detect.flood.single_flow_factor must be at least 1, got {}",
                self.flood.single_flow_factor
            )));
        }
        for (name, v, lo, hi) in [
            (
                "detect.beaconing.min_connections",
                self.beaconing.min_connections,
                3,
                super::beaconing::KEEP,
            ),
            (
                "detect.exfiltration.baseline_buckets",
                self.exfiltration.baseline_buckets,
                1,
                super::exfiltration::HISTORY,
            ),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(ConfigError(format!(
                    "{name} must be between {lo} and {hi} (the history kept), got {v}"
                )));
            }
        }
        // A count threshold of 0 would alert on the first packet of anything.
        for (name, v) in [
            (
                "detect.port_scan.min_ports",
                self.port_scan.min_ports as u64,
            ),
            (
                "detect.host_scan.min_hosts",
                self.host_scan.min_hosts as u64,
            ),
            ("detect.flood.min_flows", self.flood.min_flows),
            (
                "detect.brute_force.min_sessions",
                self.brute_force.min_sessions as u64,
            ),
            ("detect.dga.min_domains", self.dga.min_domains as u64),
            (
                "detect.nxdomain_burst.min_names",
                self.nxdomain_burst.min_names as u64,
            ),
        ] {
            if v == 0 {
                return Err(ConfigError(format!("{name} must be at least 1")));
            }
        }
        if self.beaconing.max_interval_secs < self.beaconing.min_interval_secs {
            return Err(ConfigError(format!(
                "detect.beaconing.max_interval_secs ({}) is below detect.beaconing.min_interval_secs ({})",
                self.beaconing.max_interval_secs, self.beaconing.min_interval_secs
            )));
        }
        if self.max_tracked < 100 {
            return Err(ConfigError(format!(
                "detect.max_tracked must be at least 100, got {}",
                self.max_tracked
            )));
        }
        Ok(())
    }

    /// The `local_only_devices` MACs (validated).
    pub fn local_only_macs(&self) -> Vec<[u8; 6]> {
        self.local_only_devices
            .iter()
            .filter_map(|m| parse_mac(m))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse_mac("AA:bb:cc:00:11:22"),
            Some([0xaa, 0xbb, 0xcc, 0, 0x11, 0x22])
        );
        assert_eq!(
            parse_mac("aa-bb-cc-00-11-22"),
            Some([0xaa, 0xbb, 0xcc, 0, 0x11, 0x22])
        );
        assert_eq!(parse_mac("aa:bb:cc:00:11"), None);
        assert_eq!(parse_mac("aa:bb:cc:00:11:2g"), None);
        let c = DetectConfig {
            local_only_devices: vec!["nope".into()],
            ..Default::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("detect.local_only_devices"), "{e}");
        let c = DetectConfig {
            rogue_ra: RogueRaConfig {
                allowed_routers: vec!["00:11:22:33:44".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("detect.rogue_ra.allowed_routers"), "{e}");
        DetectConfig::default().validate().unwrap();
        let c = DetectConfig {
            port_scan: PortScanConfig {
                window_secs: 0,
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("port_scan.window_secs")
        );
    }

    #[test]
    fn zero_counts_and_inverted_beacon_intervals_are_refused() {
        let mut c = DetectConfig::default();
        c.brute_force.min_sessions = 0;
        assert_eq!(
            c.validate().unwrap_err().0,
            "detect.brute_force.min_sessions must be at least 1"
        );
        let mut c = DetectConfig::default();
        c.beaconing.min_interval_secs = 600;
        c.beaconing.max_interval_secs = 60;
        let e = c.validate().unwrap_err().0;
        assert!(e.contains("detect.beaconing.max_interval_secs (60)"), "{e}");
        c.beaconing.max_interval_secs = 600;
        c.validate().unwrap();
    }

    #[test]
    fn single_flow_factor_is_at_least_one() {
        let mut c = DetectConfig::default();
        c.flood.single_flow_factor = 1.0;
        c.validate().unwrap();
        c.flood.single_flow_factor = 0.5;
        let e = c.validate().unwrap_err().0;
        assert_eq!(
            e,
            "detect.flood.single_flow_factor must be at least 1, got 0.5"
        );
        c.flood.single_flow_factor = f64::NAN;
        assert!(c.validate().is_err());
    }

    /// Settings beyond the history a rule keeps would silently disable it: refused,
    /// naming the key and the range.
    #[test]
    fn history_lengths_are_bounded() {
        let mut c = DetectConfig::default();
        c.beaconing.min_connections = 48;
        c.exfiltration.baseline_buckets = 168;
        c.validate().unwrap();
        c.beaconing.min_connections = 49;
        assert_eq!(
            c.validate().unwrap_err().0,
            "detect.beaconing.min_connections must be between 3 and 48 (the history kept), got 49"
        );
        c.beaconing.min_connections = 2;
        assert!(c.validate().is_err());
        c.beaconing.min_connections = 24;
        c.exfiltration.baseline_buckets = 169;
        assert_eq!(
            c.validate().unwrap_err().0,
            "detect.exfiltration.baseline_buckets must be between 1 and 168 (the history kept), got 169"
        );
        c.exfiltration.baseline_buckets = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn toml_keys_round_trip() {
        let c = DetectConfig::default();
        let text = toml::to_string(&c).unwrap();
        let back: DetectConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
        let err = toml::from_str::<DetectConfig>("[port_scan]\nmin_portz = 3\n").unwrap_err();
        assert!(err.to_string().contains("min_portz"), "{err}");
    }
}
