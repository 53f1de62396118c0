//! What a rule reports: an [`Alert`], before deduplication and storage.

use serde::Serialize;

/// How bad an alert is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, nothing to do (a new device).
    Info,
    /// Unusual or a weak practice; often benign.
    Low,
    /// Suspicious: look at it.
    Medium,
    /// Likely an attack or a compromised device.
    High,
    /// An attack in progress with direct impact.
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One detection. Deduplication (rule × device × peer) happens later, in
/// [`super::lifecycle`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// Packet time of the evidence, µs since the epoch.
    pub ts: i64,
    /// Rule id, one of [`super::RULE_IDS`].
    pub rule: &'static str,
    pub severity: Severity,
    /// One line, plain language ("Port scan of 192.168.1.20 by 192.168.1.66").
    pub title: String,
    /// What was seen, why it matters and what to do, in plain language.
    pub explanation: String,
    /// The home device concerned (the local side), when known.
    #[serde(serialize_with = "ser_mac")]
    pub device_mac: Option<[u8; 6]>,
    /// The other side: an address, a domain, a service ("tcp/23"); part of the dedup key.
    pub peer: Option<String>,
    /// MITRE ATT&CK technique id, where one fits.
    pub mitre: Option<&'static str>,
    /// Flows that make up the evidence (a bounded sample).
    pub flow_ids: Vec<u64>,
    /// Rule-specific facts: counts, domains, ports, thresholds.
    pub evidence: serde_json::Value,
}

fn ser_mac<S: serde::Serializer>(m: &Option<[u8; 6]>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(&crate::inventory::oui::format_mac(*m)),
        None => s.serialize_none(),
    }
}

/// Most flow ids a rule attaches to one alert.
pub const MAX_ALERT_FLOWS: usize = 20;

impl Alert {
    /// An alert with the required fields; the rest is filled with the builder methods.
    pub fn new(ts: i64, rule: &'static str, severity: Severity, title: impl Into<String>) -> Alert {
        Alert {
            ts,
            rule,
            severity,
            title: title.into(),
            explanation: String::new(),
            device_mac: None,
            peer: None,
            mitre: None,
            flow_ids: Vec::new(),
            evidence: serde_json::Value::Null,
        }
    }

    pub fn explain(mut self, text: impl Into<String>) -> Alert {
        self.explanation = text.into();
        self
    }

    pub fn device(mut self, mac: Option<[u8; 6]>) -> Alert {
        self.device_mac = mac;
        self
    }

    pub fn peer(mut self, peer: impl Into<String>) -> Alert {
        self.peer = Some(peer.into());
        self
    }

    pub fn mitre(mut self, technique: &'static str) -> Alert {
        self.mitre = Some(technique);
        self
    }

    pub fn flows(mut self, ids: impl IntoIterator<Item = u64>) -> Alert {
        self.flow_ids = ids.into_iter().take(MAX_ALERT_FLOWS).collect();
        self
    }

    pub fn evidence(mut self, v: serde_json::Value) -> Alert {
        self.evidence = v;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_text_mac_and_severity() {
        let a = Alert::new(5, "port_scan", Severity::High, "t")
            .device(Some([0xaa, 0xbb, 0xcc, 0, 1, 2]))
            .peer("10.0.0.1")
            .flows(0..100)
            .evidence(serde_json::json!({"ports": 3}));
        assert_eq!(a.flow_ids.len(), MAX_ALERT_FLOWS);
        let j = serde_json::to_value(&a).unwrap();
        assert_eq!(j["device_mac"], "aa:bb:cc:00:01:02");
        assert_eq!(j["severity"], "high");
        assert_eq!(j["evidence"]["ports"], 3);
        assert!(Severity::Info < Severity::Low && Severity::High < Severity::Critical);
        assert_eq!(Severity::parse("medium"), Some(Severity::Medium));
    }
}
