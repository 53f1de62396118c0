//! `new_device`: a device (MAC) never seen before — once per device.
//!
//! Devices known from earlier runs come from the `devices` table
//! ([`super::Engine::seed_known_devices`]); the lifecycle also never opens a second
//! `new_device` alert for one MAC. Phones and laptops use a random ("private") MAC per
//! network and sometimes rotate it: a randomized MAC waits up to
//! `randomized_grace_secs` for its DHCP host name, and if that name belongs to a known
//! device it is the same device with a new address — not reported. Severity: low for a
//! new piece of hardware (a globally unique MAC), info for a randomized MAC.

use std::collections::{HashMap, HashSet};

use serde_json::json;

use super::{Alert, Ctx, DetectConfig, Rule, SEC, Severity, mac_text};
use crate::event::Event;
use crate::inventory::DeviceRecord;

const MAX_PENDING: usize = 4096;

pub struct NewDevice {
    done: HashSet<[u8; 6]>,
    /// Host names of devices seen in this run (lowercase).
    names: HashSet<String>,
    /// Randomized MACs waiting for a host name: latest record, deadline.
    pending: HashMap<[u8; 6], (DeviceRecord, i64)>,
}

impl NewDevice {
    pub fn new(_cfg: &DetectConfig) -> Self {
        NewDevice {
            done: HashSet::new(),
            names: HashSet::new(),
            pending: HashMap::new(),
        }
    }

    fn known_name(&self, ctx: &Ctx, d: &DeviceRecord) -> bool {
        d.hostname.as_ref().is_some_and(|h| {
            let h = h.to_ascii_lowercase();
            ctx.known_hostnames.contains(&h) || self.names.contains(&h)
        })
    }

    fn report(&mut self, ctx: &Ctx, d: &DeviceRecord, out: &mut Vec<Alert>) {
        self.done.insert(d.mac);
        if d.randomized && self.known_name(ctx, d) {
            return; // a known device with a new private address
        }
        if let Some(h) = &d.hostname {
            self.names.insert(h.to_ascii_lowercase());
        }
        let mac = mac_text(Some(d.mac));
        let vendor = d.vendor.unwrap_or(if d.randomized {
            "private address"
        } else {
            "unknown vendor"
        });
        let name = d
            .hostname
            .as_deref()
            .map(|h| format!(" \"{h}\""))
            .unwrap_or_default();
        let addr = d
            .last_ipv4
            .or(d.last_ipv6)
            .map(|a| format!(" at {a}"))
            .unwrap_or_default();
        let (sev, note) = if d.randomized {
            (
                Severity::Info,
                "It uses a randomized (private) MAC address, as phones and laptops do per network.",
            )
        } else {
            (
                Severity::Low,
                "If you do not recognise it, find it and take it off the network.",
            )
        };
        out.push(
            Alert::new(d.first_seen, "new_device", sev, format!("New device {mac}{name} ({vendor})"))
                .explain(format!("A device never seen before joined the network: {mac}{name}{addr}, {vendor}. {note}"))
                .device(Some(d.mac))
                .mitre("T1200")
                .evidence(json!({
                    "mac": mac, "vendor": d.vendor, "hostname": d.hostname, "randomized": d.randomized,
                    "ipv4": d.last_ipv4.map(|a| a.to_string()), "ipv6": d.last_ipv6.map(|a| a.to_string()),
                    "dhcp_vendor_class": d.dhcp_vendor_class, "dhcp_fingerprint": d.dhcp_fingerprint,
                    "first_seen_us": d.first_seen,
                })),
        );
    }
}

impl Rule for NewDevice {
    fn ids(&self) -> &'static [&'static str] {
        &["new_device"]
    }

    fn on_event(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<Alert>) {
        let Event::Device(d) = ev else { return };
        if ctx.known_devices.contains(&d.mac) || self.done.contains(&d.mac) {
            if let Some(h) = &d.hostname
                && !d.randomized
            {
                self.names.insert(h.to_ascii_lowercase());
            }
            return;
        }
        if !d.randomized || d.hostname.is_some() {
            self.pending.remove(&d.mac);
            self.report(ctx, d, out);
            return;
        }
        let grace = ctx.cfg.new_device.randomized_grace_secs as i64 * SEC;
        if let Some(p) = self.pending.get_mut(&d.mac) {
            p.0 = (**d).clone();
        } else if self.pending.len() < MAX_PENDING {
            self.pending
                .insert(d.mac, ((**d).clone(), d.first_seen + grace));
        } else {
            self.report(ctx, d, out);
        }
    }

    fn tick(&mut self, ctx: &Ctx, now: i64, out: &mut Vec<Alert>) {
        // In deadline, then MAC order: the map's order differs from run to run, and the
        // order of the reports is the order of the alerts' ids.
        let mut due: Vec<(i64, [u8; 6])> = self
            .pending
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(m, (_, deadline))| (*deadline, *m))
            .collect();
        due.sort_unstable();
        for (_, m) in due {
            if let Some((d, _)) = self.pending.remove(&m) {
                self.report(ctx, &d, out);
            }
        }
    }

    fn finish(&mut self, ctx: &Ctx, out: &mut Vec<Alert>) {
        let mut all: Vec<DeviceRecord> = self.pending.drain().map(|(_, (d, _))| d).collect();
        all.sort_unstable_by_key(|d| (d.first_seen, d.mac));
        for d in all {
            self.report(ctx, &d, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    const PHONE: [u8; 6] = [0x7a, 0x11, 0x22, 0x33, 0x44, 0x55];
    const PHONE2: [u8; 6] = [0x7a, 0x11, 0x22, 0x33, 0x44, 0x66];

    #[test]
    fn new_hardware_once_known_devices_never() {
        let mut ctx = ctx();
        ctx.known_devices.insert(GW_MAC);
        let mut r = NewDevice::new(&ctx.cfg);
        let evs = [
            device(T0, DEV_MAC, None, true),
            device(T0 + SEC, DEV_MAC, Some("pi"), false),
            device(T0, GW_MAC, None, true),
        ];
        let a = run_rule(&mut r, &mut ctx, &evs);
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].severity, a[0].device_mac),
            (Severity::Low, Some(DEV_MAC))
        );
        assert_eq!(a[0].peer, None);
    }

    #[test]
    fn randomized_mac_of_a_known_phone_is_not_new() {
        let mut ctx = ctx();
        ctx.known_hostnames.insert("annas-iphone".into());
        let mut r = NewDevice::new(&ctx.cfg);
        let evs = [
            // First frame without a name, then DHCP gives the name within the grace period.
            device(T0, PHONE, None, true),
            device(T0 + 2 * SEC, PHONE, Some("Annas-iPhone"), false),
            // An unknown phone: reported (info) after the grace period.
            device(T0 + 3 * SEC, PHONE2, None, true),
            device(T0 + 100 * SEC, DEV_MAC, None, true),
        ];
        let a = run_rule(&mut r, &mut ctx, &evs);
        let got: Vec<_> = a.iter().map(|a| (a.device_mac, a.severity)).collect();
        assert_eq!(
            got,
            [
                (Some(DEV_MAC), Severity::Low),
                (Some(PHONE2), Severity::Info)
            ]
        );
    }
}
