//! Application-protocol metadata of flows: DNS, TLS, HTTP/1, DHCP, local name
//! announcements (mDNS, SSDP, NetBIOS-NS, LLMNR), cleartext logins / legacy
//! protocols (FTP, POP3, IMAP, telnet, SMBv1) and IPv6 router advertisements (`ndp`),
//! emitted as [`ProtoRecord`]s.
//!
//! This module is the contract with the flow layer: it keeps one [`AppState`] per
//! flow, picks the parser by port (UDP; TCP for the server-first login protocols of
//! `login.rs`) or by sniffing the first client bytes (TCP: TLS and HTTP on any port), does the per-direction TCP reassembly, and
//! turns everything into plain records. All input is untrusted: parsers are
//! bounded in memory and never panic on malformed bytes.

mod dhcp;
mod dns;
mod fingerprint;
mod http;
mod login;
mod names;
mod ndp;
mod socks;
mod stream;
mod tls;

pub use dhcp::{DhcpRecord, dhcp_msg_type_name};
pub use dns::{DnsAnswer, DnsRecord, qtype_name, rcode_name};
pub use http::HttpRecord;
pub use login::CleartextRecord;
pub use names::NameRecord;
pub use ndp::{RaPrefix, RouterAdvertRecord, on_icmpv6};
pub use tls::TlsRecord;

use serde::Serialize;

use crate::flow::Direction;
use dns::{DnsTcp, DnsTracker};
use http::HttpSession;
use login::LoginSession;
use names::{NameProto, NameSession};
use socks::SocksSkip;
use stream::{Broken, Reassembler};
use tls::TlsSession;

/// Packet time in microseconds since the Unix epoch.
pub type Ts = i64;

/// Every label [`AppState::app_proto`] can return ("other" stands for any label added
/// later without being listed here). The flow table stores a label as its index.
pub const APP_LABELS: [&str; 14] = [
    "dns",
    "tls",
    "http",
    "dhcp",
    "mdns",
    "ssdp",
    "netbios-ns",
    "llmnr",
    "ftp",
    "pop3",
    "imap",
    "telnet",
    "smb",
    "other",
];

/// Transport protocol of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Udp,
}

/// One piece of extracted metadata.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ProtoRecord {
    Dns(DnsRecord),
    Tls(TlsRecord),
    Http(HttpRecord),
    Dhcp(DhcpRecord),
    Name(NameRecord),
    /// A cleartext login (FTP, POP3, IMAP, telnet) or a legacy session (telnet, SMBv1).
    /// Used by detection; not stored in a table of its own.
    Cleartext(CleartextRecord),
    /// An IPv6 router advertisement: the home's prefixes and resolvers.
    RouterAdvert(RouterAdvertRecord),
}

/// Tunnels (HTTP CONNECT, SOCKS) looked into per connection.
const MAX_TUNNELS: u8 = 2;

/// UDP packets in a row that did not parse before a flow is given up.
const MAX_UDP_MISSES: u8 = 8;

/// Per-flow parser state.
#[derive(Debug)]
pub struct AppState {
    inner: Inner,
    /// A message of the protocol has been parsed (UDP), so the label is earned.
    identified: bool,
    misses: u8,
}

#[derive(Debug)]
enum Inner {
    Dns(DnsTracker),
    Dhcp,
    Names(NameSession),
    Tcp(Box<TcpState>),
    Done(Option<&'static str>),
}

#[derive(Debug)]
struct TcpState {
    streams: [Reassembler; 2],
    app: TcpApp,
    /// Tunnels (HTTP CONNECT, SOCKS) entered so far.
    tunnels: u8,
}

#[derive(Debug)]
enum TcpApp {
    Sniff,
    Tls(Box<TlsSession>),
    Http(HttpSession),
    Dns(DnsTcp),
    /// SOCKS handshake being skipped; the tunnelled protocol is sniffed after it.
    Socks(SocksSkip),
    /// FTP, POP3, IMAP, telnet or SMB, chosen by the server port.
    Login(Box<LoginSession>),
}

fn side(dir: Direction) -> usize {
    match dir {
        Direction::Orig => 0,
        Direction::Resp => 1,
    }
}

impl AppState {
    /// Creates per-flow state. TCP always gets one (content sniffing, or the login
    /// parser when the responder port is 21, 23, 110, 139, 143, 445 or 2323); UDP only
    /// on the ports parsed here (53, 5353, 67/68, 1900, 137, 5355).
    pub fn for_flow(transport: Transport, orig_port: u16, resp_port: u16) -> Option<Box<AppState>> {
        let either = |p: u16| orig_port == p || resp_port == p;
        let inner = match transport {
            Transport::Tcp => Inner::Tcp(Box::new(TcpState {
                streams: [Reassembler::new(), Reassembler::new()],
                app: if either(53) {
                    TcpApp::Dns(DnsTcp::new())
                } else if let Some(kind) = login::Kind::for_port(resp_port) {
                    TcpApp::Login(Box::new(LoginSession::new(kind)))
                } else {
                    TcpApp::Sniff
                },
                tunnels: 0,
            })),
            Transport::Udp => {
                let by_port = |p: u16| match p {
                    53 => Some(Inner::Dns(DnsTracker::new(false))),
                    5353 => Some(Inner::Names(NameSession::new(NameProto::Mdns))),
                    67 | 68 => Some(Inner::Dhcp),
                    1900 => Some(Inner::Names(NameSession::new(NameProto::Ssdp))),
                    137 => Some(Inner::Names(NameSession::new(NameProto::NetbiosNs))),
                    5355 => Some(Inner::Names(NameSession::new(NameProto::Llmnr))),
                    _ => None,
                };
                by_port(resp_port).or_else(|| by_port(orig_port))?
            }
        };
        Some(Box::new(AppState {
            inner,
            identified: false,
            misses: 0,
        }))
    }

    /// One UDP datagram of the flow.
    pub fn on_udp(&mut self, ts: Ts, dir: Direction, payload: &[u8], out: &mut Vec<ProtoRecord>) {
        self.on_udp_part(ts, dir, payload, payload.len(), out)
    }

    /// The start of a UDP datagram whose payload is `full_len` bytes: cut by a snaplen,
    /// or the first IP fragment of a datagram (later fragments are never seen here).
    /// Parsers read what is there and stop where it ends.
    pub fn on_udp_part(
        &mut self,
        ts: Ts,
        dir: Direction,
        payload: &[u8],
        full_len: usize,
        out: &mut Vec<ProtoRecord>,
    ) {
        let ok = match &mut self.inner {
            Inner::Dns(t) => t.on_message_part(ts, payload, full_len, out),
            Inner::Dhcp => dhcp::on_udp(ts, payload, out),
            Inner::Names(s) => s.on_udp(ts, dir, payload, out),
            Inner::Tcp(_) | Inner::Done(_) => return,
        };
        if ok {
            self.identified = true;
            self.misses = 0;
        } else {
            self.misses = self.misses.saturating_add(1);
            if !self.identified && self.misses >= MAX_UDP_MISSES {
                self.finish(out);
            }
        }
    }

    /// One TCP segment: raw sequence number, SYN/FIN flags and payload.
    #[allow(clippy::too_many_arguments)]
    pub fn on_tcp(
        &mut self,
        ts: Ts,
        dir: Direction,
        seq: u32,
        syn: bool,
        fin: bool,
        payload: &[u8],
        out: &mut Vec<ProtoRecord>,
    ) {
        let Inner::Tcp(t) = &mut self.inner else {
            return;
        };
        // FIN needs no handling here: `on_close` ends bodies that run to the close.
        let _ = fin;
        let d = side(dir);
        t.streams[d].push(seq, syn, payload);
        match t.pump(ts, d, out) {
            Some(None) => self.inner = Inner::Done(None),
            Some(Some(_)) => self.finish(out),
            None => {}
        }
    }

    /// Flow ended: emit whatever is pending.
    pub fn on_close(&mut self, _ts: Ts, out: &mut Vec<ProtoRecord>) {
        self.finish(out);
    }

    fn finish(&mut self, out: &mut Vec<ProtoRecord>) {
        let label = self.app_proto();
        match &mut self.inner {
            Inner::Dns(t) => t.flush(out),
            Inner::Tcp(t) => match &mut t.app {
                TcpApp::Tls(s) => s.on_close(out),
                TcpApp::Http(s) => s.on_close(out),
                TcpApp::Dns(s) => s.flush(out),
                TcpApp::Login(s) => s.on_close(out),
                TcpApp::Socks(_) | TcpApp::Sniff => {}
            },
            Inner::Dhcp | Inner::Names(_) | Inner::Done(_) => {}
        }
        self.inner = Inner::Done(label);
    }

    /// Application protocol identified so far.
    pub fn app_proto(&self) -> Option<&'static str> {
        match &self.inner {
            Inner::Done(l) => *l,
            Inner::Tcp(t) => t.label(),
            _ if !self.identified => None,
            Inner::Dns(_) => Some("dns"),
            Inner::Dhcp => Some("dhcp"),
            Inner::Names(s) => Some(s.proto.label()),
        }
    }

    /// True when nothing more will be extracted from this flow.
    pub fn is_done(&self) -> bool {
        matches!(self.inner, Inner::Done(_))
    }
}

impl TcpState {
    fn label(&self) -> Option<&'static str> {
        match &self.app {
            TcpApp::Sniff => None,
            TcpApp::Tls(_) => Some("tls"),
            TcpApp::Http(_) => Some("http"),
            TcpApp::Dns(d) => d.seen_dns.then_some("dns"),
            TcpApp::Socks(_) => None,
            TcpApp::Login(s) => s.identified.then(|| s.label()),
        }
    }

    /// Runs the parser over new bytes of side `d`. Returns `Some(label)` once the
    /// flow has nothing more to give.
    fn pump(
        &mut self,
        ts: Ts,
        d: usize,
        out: &mut Vec<ProtoRecord>,
    ) -> Option<Option<&'static str>> {
        let mut both = false;
        loop {
            if let TcpApp::Sniff = self.app {
                match self.sniff(d) {
                    Ok(app) => self.app = app,
                    Err(verdict) => return verdict,
                }
                both = true; // identified: the parser sees both sides' buffered bytes
            }
            if both {
                self.run(ts, 0, out);
                self.run(ts, 1, out);
            } else {
                self.run(ts, d, out);
            }
            let tunnel = match &self.app {
                TcpApp::Http(s) => s.finished && s.tunnel,
                TcpApp::Socks(s) => s.done(),
                _ => false,
            };
            if !tunnel || self.tunnels >= MAX_TUNNELS {
                break;
            }
            // CONNECT or SOCKS established: parse what is inside.
            self.tunnels += 1;
            self.app = TcpApp::Sniff;
        }
        let done = match &self.app {
            TcpApp::Tls(s) => s.finished,
            TcpApp::Http(s) => s.finished,
            TcpApp::Dns(s) => s.failed,
            TcpApp::Socks(s) => s.failed() || s.done(),
            TcpApp::Login(s) => s.finished,
            TcpApp::Sniff => false,
        };
        done.then(|| self.label())
    }

    /// Picks the parser from the first client bytes. `Err(None)`: wait for more;
    /// `Err(Some(None))`: not a protocol parsed here.
    fn sniff(&self, d: usize) -> Result<TcpApp, Option<Option<&'static str>>> {
        let client = self.streams[0].data();
        if d == 1 && client.is_empty() && !self.streams[1].data().is_empty() {
            return Err(Some(None)); // the server spoke first: none of ours
        }
        let verdicts = [
            tls::sniff(client),
            http::sniff(client),
            socks::sniff(client),
        ];
        if verdicts[0] == Some(true) {
            Ok(TcpApp::Tls(Box::new(TlsSession::new())))
        } else if verdicts[1] == Some(true) {
            Ok(TcpApp::Http(HttpSession::new()))
        } else if verdicts[2] == Some(true) {
            Ok(TcpApp::Socks(SocksSkip::new(client[0])))
        } else if verdicts.iter().all(|v| *v == Some(false))
            || self.streams[0].broken() != Broken::No
        {
            Err(Some(None))
        } else {
            Err(None)
        }
    }

    fn run(&mut self, ts: Ts, d: usize, out: &mut Vec<ProtoRecord>) {
        let rs = &mut self.streams[d];
        match &mut self.app {
            TcpApp::Tls(s) => s.on_data(ts, d, rs, out),
            TcpApp::Http(s) => s.on_data(ts, d, rs, out),
            TcpApp::Dns(s) => s.on_data(ts, rs, out),
            TcpApp::Socks(s) => s.on_data(d, rs),
            TcpApp::Login(s) => s.on_data(ts, d, rs, out),
            TcpApp::Sniff => {}
        }
    }
}

#[cfg(test)]
mod tests;
