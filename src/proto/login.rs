//! Cleartext logins and legacy protocols, for the detection rules
//! `cleartext_credentials`, `insecure_protocol` and `brute_force`:
//!
//! - FTP (21), POP3 (110), IMAP (143): the login commands (`USER`/`PASS`, `LOGIN`,
//!   `AUTH PLAIN`/`AUTH LOGIN`, `AUTHENTICATE PLAIN`/`LOGIN`) and the server's verdict,
//!   one [`CleartextRecord`] per attempt; `AUTH TLS`, `STLS` and `STARTTLS` end the
//!   parsing (what follows is encrypted);
//! - telnet (23, 2323): the login and password prompts and the lines typed after them,
//!   one record per session (also when no login was seen: telnet itself is cleartext);
//! - SMB (445, 139): one record when SMBv1 is negotiated (the server answers in SMB1).
//!
//! The parser is chosen by the server port (these protocols speak server-first, so the
//! client-side sniffing of `proto/mod.rs` cannot pick them). Passwords are never kept:
//! only the fact that one crossed the wire in clear. Every buffer and count is capped,
//! and nothing here can panic on input.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use super::dns::lossy;
use super::stream::{Broken, Reassembler};
use super::{ProtoRecord, Ts};

/// Longest command or reply line looked at; a longer one ends the parsing.
const MAX_LINE: usize = 1024;
/// Bytes inspected per direction before giving up on a session.
const MAX_SCAN: usize = 64 * 1024;
/// Login attempts recorded per connection.
const MAX_ATTEMPTS: u8 = 16;
/// Longest user name kept.
const MAX_USER: usize = 128;
/// Telnet: characters of one typed line kept, and of server text searched for prompts.
const MAX_TYPED: usize = 128;
const PROMPT_TAIL: usize = 32;

/// A login seen in clear, or a session of a legacy cleartext protocol.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CleartextRecord {
    /// Time of the login command (telnet: of the password line; SMB: of the reply).
    pub ts: Ts,
    /// "ftp", "pop3", "imap", "telnet" or "smb1".
    pub protocol: &'static str,
    /// A password (or a cleartext SASL exchange) crossed the wire in clear.
    pub credentials: bool,
    /// The user name sent, if seen (the password is never kept).
    pub user: Option<String>,
    /// The server's verdict: accepted, rejected, or unknown (telnet, no reply seen).
    pub success: Option<bool>,
}

/// Which protocol a connection's server port selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Ftp,
    Pop3,
    Imap,
    Telnet,
    Smb,
}

impl Kind {
    pub fn for_port(port: u16) -> Option<Kind> {
        Some(match port {
            21 => Kind::Ftp,
            110 => Kind::Pop3,
            143 => Kind::Imap,
            23 | 2323 => Kind::Telnet,
            445 | 139 => Kind::Smb,
            _ => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Ftp => "ftp",
            Kind::Pop3 => "pop3",
            Kind::Imap => "imap",
            Kind::Telnet => "telnet",
            Kind::Smb => "smb",
        }
    }
}

/// A login sent and waiting for the server's verdict.
#[derive(Debug)]
struct Pending {
    ts: Ts,
    credentials: bool,
    /// IMAP command tag the verdict will carry.
    tag: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Expect {
    #[default]
    Nothing,
    User,
    Password,
}

/// Telnet option negotiation is stripped from the byte stream with this state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Iac {
    #[default]
    Data,
    /// After IAC.
    Cmd,
    /// After IAC WILL/WONT/DO/DONT: one option byte follows.
    Opt,
    /// Inside IAC SB ... IAC SE.
    Sub,
    SubCmd,
}

#[derive(Debug, Default)]
struct Telnet {
    iac: [Iac; 2],
    expect: Expect,
    typed: Vec<u8>,
    /// Last characters the server sent, lowercased, to find prompts split across segments.
    tail: Vec<u8>,
}

/// Parser state of one connection.
#[derive(Debug)]
pub(crate) struct LoginSession {
    kind: Kind,
    /// The server's first bytes matched the protocol: the flow's label is earned.
    pub identified: bool,
    pub finished: bool,
    user: Option<String>,
    pending: Option<Pending>,
    attempts: u8,
    scanned: [usize; 2],
    telnet: Box<Telnet>,
    server_spoke: bool,
    /// SMB: the client's first message was an SMB1 negotiate; whether it offered SMB2.
    smb1_offer: Option<bool>,
    emitted: bool,
    last_ts: Ts,
}

fn starts_ci(line: &[u8], word: &[u8]) -> bool {
    line.len() >= word.len() && line[..word.len()].eq_ignore_ascii_case(word)
}

/// Splits off the first space-separated word.
fn word(line: &[u8]) -> (&[u8], &[u8]) {
    let line = trim(line);
    match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], trim(&line[i + 1..])),
        None => (line, &[][..]),
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r' | b'\n', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r' | b'\n'] = s {
        s = rest;
    }
    s
}

/// User name of a SASL PLAIN message (`authzid \0 authcid \0 password`, base64).
fn sasl_plain_user(b64: &[u8]) -> Option<String> {
    let raw = STANDARD.decode(trim(b64)).ok()?;
    let mut parts = raw.split(|&b| b == 0);
    let _authzid = parts.next()?;
    let authcid = parts.next()?;
    (!authcid.is_empty()).then(|| lossy(authcid, MAX_USER))
}

/// An IMAP astring: atom or quoted string (a literal `{n}` gives no name).
fn imap_astring(s: &[u8]) -> Option<String> {
    let s = trim(s);
    if let Some(rest) = s.strip_prefix(b"\"") {
        let mut v = Vec::new();
        let mut esc = false;
        for &b in rest {
            if esc {
                v.push(b);
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                return Some(lossy(&v, MAX_USER));
            } else {
                v.push(b);
            }
        }
        return None;
    }
    if s.first() == Some(&b'{') {
        return None;
    }
    let end = s.iter().position(|&b| b == b' ').unwrap_or(s.len());
    (end > 0).then(|| lossy(&s[..end], MAX_USER))
}

impl LoginSession {
    pub fn new(kind: Kind) -> Self {
        LoginSession {
            kind,
            identified: false,
            finished: false,
            user: None,
            pending: None,
            attempts: 0,
            scanned: [0; 2],
            telnet: Box::default(),
            server_spoke: false,
            smb1_offer: None,
            emitted: false,
            last_ts: 0,
        }
    }

    pub fn label(&self) -> &'static str {
        self.kind.label()
    }

    /// Feeds the bytes buffered in `rs` for side `d` (0 = client, 1 = server).
    pub fn on_data(&mut self, ts: Ts, d: usize, rs: &mut Reassembler, out: &mut Vec<ProtoRecord>) {
        self.last_ts = ts;
        if !self.finished {
            match self.kind {
                Kind::Ftp | Kind::Pop3 | Kind::Imap => self.lines(ts, d, rs, out),
                Kind::Telnet => {
                    let n = rs.data().len();
                    self.scanned[d] += n;
                    let data = rs.data().to_vec();
                    rs.consume(n);
                    self.telnet_bytes(ts, d, &data, out);
                }
                Kind::Smb => self.smb(ts, d, rs, out),
            }
            if self.scanned[d] > MAX_SCAN || rs.broken() != Broken::No {
                self.finish(out);
            }
        }
        if self.finished {
            rs.stop();
        }
    }

    /// The connection ended (or the parser gives up): emit what is pending.
    pub fn on_close(&mut self, out: &mut Vec<ProtoRecord>) {
        self.finish(out);
    }

    fn finish(&mut self, out: &mut Vec<ProtoRecord>) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let Some(p) = self.pending.take() {
            self.emit(p.ts, p.credentials, None, out);
        }
        match self.kind {
            Kind::Telnet if !self.emitted && self.server_spoke => {
                self.emit(self.last_ts, false, None, out);
            }
            // Client offered SMB1 only and no reply was seen.
            Kind::Smb if self.smb1_offer == Some(false) && !self.emitted => {
                self.emit(self.last_ts, false, None, out);
            }
            _ => {}
        }
    }

    fn emit(
        &mut self,
        ts: Ts,
        credentials: bool,
        success: Option<bool>,
        out: &mut Vec<ProtoRecord>,
    ) {
        self.emitted = true;
        out.push(ProtoRecord::Cleartext(CleartextRecord {
            ts,
            protocol: match self.kind {
                Kind::Smb => "smb1",
                k => k.label(),
            },
            credentials,
            user: self.user.clone(),
            success,
        }));
    }

    fn lines(&mut self, ts: Ts, d: usize, rs: &mut Reassembler, out: &mut Vec<ProtoRecord>) {
        while !self.finished {
            let data = rs.data();
            if d == 1 && !self.server_spoke && !self.banner_may_be(data) {
                self.finish(out);
                return;
            }
            let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                if data.len() > MAX_LINE {
                    self.finish(out);
                }
                return;
            };
            if nl > MAX_LINE {
                self.finish(out);
                return;
            }
            let line = data[..nl].to_vec();
            rs.consume(nl + 1);
            self.scanned[d] += nl + 1;
            let line = trim(&line);
            if d == 0 {
                self.client_line(ts, line, out);
            } else {
                self.server_line(line, out);
            }
        }
    }

    /// Whether the first server bytes can still become the protocol's greeting.
    fn banner_may_be(&self, data: &[u8]) -> bool {
        let want: &[u8] = match self.kind {
            Kind::Pop3 => b"+OK",
            Kind::Imap => b"* ",
            _ => return data.iter().take(3).all(u8::is_ascii_digit),
        };
        let n = data.len().min(want.len());
        data[..n].eq_ignore_ascii_case(&want[..n])
    }

    fn client_line(&mut self, ts: Ts, line: &[u8], out: &mut Vec<ProtoRecord>) {
        let (cmd, arg) = match self.kind {
            Kind::Imap => {
                let (tag, rest) = word(line);
                let (cmd, arg) = word(rest);
                return self.imap_command(ts, tag, cmd, arg, out);
            }
            _ => word(line),
        };
        let up = cmd.to_ascii_uppercase();
        match (self.kind, up.as_slice()) {
            (Kind::Ftp, b"AUTH") | (Kind::Pop3, b"STLS") => self.finish(out),
            (_, b"USER") => self.user = Some(lossy(arg, MAX_USER)),
            (_, b"PASS") => self.send_login(ts, true, None, out),
            (Kind::Pop3, b"APOP") => {
                self.user = Some(lossy(word(arg).0, MAX_USER));
                self.send_login(ts, false, None, out);
            }
            (Kind::Pop3, b"AUTH") => self.sasl(ts, arg, None, out),
            _ => {}
        }
    }

    fn imap_command(
        &mut self,
        ts: Ts,
        tag: &[u8],
        cmd: &[u8],
        arg: &[u8],
        out: &mut Vec<ProtoRecord>,
    ) {
        let tag = Some(lossy(tag, 64));
        match cmd.to_ascii_uppercase().as_slice() {
            b"STARTTLS" => self.finish(out),
            b"LOGIN" => {
                self.user = imap_astring(arg);
                self.send_login(ts, true, tag, out);
            }
            b"AUTHENTICATE" => self.sasl(ts, arg, tag, out),
            _ => {}
        }
    }

    /// `AUTH`/`AUTHENTICATE` with a mechanism: only PLAIN and LOGIN are cleartext.
    fn sasl(&mut self, ts: Ts, arg: &[u8], tag: Option<String>, out: &mut Vec<ProtoRecord>) {
        let (mech, initial) = word(arg);
        if mech.eq_ignore_ascii_case(b"PLAIN") {
            if let Some(u) = sasl_plain_user(initial) {
                self.user = Some(u);
            }
            self.send_login(ts, true, tag, out);
        } else if mech.eq_ignore_ascii_case(b"LOGIN") {
            if let Ok(u) = STANDARD.decode(initial)
                && !u.is_empty()
            {
                self.user = Some(lossy(&u, MAX_USER));
            }
            self.send_login(ts, true, tag, out);
        }
    }

    fn send_login(
        &mut self,
        ts: Ts,
        credentials: bool,
        tag: Option<String>,
        out: &mut Vec<ProtoRecord>,
    ) {
        // A second login before the first one's verdict: record the first as unknown.
        if let Some(p) = self.pending.take() {
            self.emit(p.ts, p.credentials, None, out);
        }
        self.pending = Some(Pending {
            ts,
            credentials,
            tag,
        });
    }

    fn server_line(&mut self, line: &[u8], out: &mut Vec<ProtoRecord>) {
        if !self.server_spoke {
            self.server_spoke = true;
            let banner = match self.kind {
                Kind::Ftp => line.len() >= 3 && matches!(&line[..3], b"220" | b"120"),
                Kind::Pop3 => starts_ci(line, b"+OK"),
                Kind::Imap => starts_ci(line, b"* OK") || starts_ci(line, b"* PREAUTH"),
                _ => false,
            };
            if !banner {
                self.pending = None;
                self.finish(out);
                return;
            }
            self.identified = true;
            return;
        }
        let Some(p) = &self.pending else { return };
        let verdict = match self.kind {
            Kind::Ftp => match line.first() {
                Some(b'2') => Some(true),
                Some(b'4' | b'5') => Some(false),
                _ => None, // 1xx/3xx: not the verdict yet
            },
            Kind::Pop3 if starts_ci(line, b"+OK") => Some(true),
            Kind::Pop3 if starts_ci(line, b"-ERR") => Some(false),
            Kind::Imap => {
                let (tag, rest) = word(line);
                let (status, _) = word(rest);
                if p.tag.as_deref().map(str::as_bytes) != Some(tag) {
                    None
                } else if status.eq_ignore_ascii_case(b"OK") {
                    Some(true)
                } else if status.eq_ignore_ascii_case(b"NO") || status.eq_ignore_ascii_case(b"BAD")
                {
                    Some(false)
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(ok) = verdict {
            let p = self.pending.take().expect("checked above");
            self.emit(p.ts, p.credentials, Some(ok), out);
            self.attempts += 1;
            if ok || self.attempts >= MAX_ATTEMPTS {
                self.finish(out);
            }
        }
    }

    fn telnet_bytes(&mut self, ts: Ts, d: usize, data: &[u8], out: &mut Vec<ProtoRecord>) {
        if d == 1 && !data.is_empty() {
            self.server_spoke = true;
            self.identified = true;
        }
        for &b in data {
            if self.finished {
                return;
            }
            let t = &mut self.telnet;
            let (next, byte) = match (t.iac[d], b) {
                (Iac::Data, 255) => (Iac::Cmd, None),
                (Iac::Data, _) => (Iac::Data, Some(b)),
                (Iac::Cmd, 255) => (Iac::Data, Some(255)),
                (Iac::Cmd, 251..=254) => (Iac::Opt, None),
                (Iac::Cmd, 250) => (Iac::Sub, None),
                (Iac::Cmd, _) | (Iac::Opt, _) => (Iac::Data, None),
                (Iac::Sub, 255) => (Iac::SubCmd, None),
                (Iac::Sub, _) => (Iac::Sub, None),
                (Iac::SubCmd, 240) => (Iac::Data, None),
                (Iac::SubCmd, _) => (Iac::Sub, None),
            };
            t.iac[d] = next;
            let Some(c) = byte else { continue };
            if d == 1 {
                t.tail.push(c.to_ascii_lowercase());
                if t.tail.len() > PROMPT_TAIL {
                    t.tail.drain(..t.tail.len() - PROMPT_TAIL);
                }
                if t.tail.ends_with(b"password:") || t.tail.ends_with(b"password: ") {
                    t.expect = Expect::Password;
                    t.typed.clear();
                } else if t.tail.ends_with(b"login:")
                    || t.tail.ends_with(b"login: ")
                    || t.tail.ends_with(b"username:")
                    || t.tail.ends_with(b"username: ")
                {
                    t.expect = Expect::User;
                    t.typed.clear();
                }
                continue;
            }
            match c {
                b'\r' | b'\n' | 0 => {
                    if t.typed.is_empty() {
                        continue;
                    }
                    let line = std::mem::take(&mut t.typed);
                    match std::mem::take(&mut t.expect) {
                        Expect::User => self.user = Some(lossy(&line, MAX_USER)),
                        Expect::Password => {
                            self.emit(ts, true, None, out);
                            self.finish(out);
                        }
                        Expect::Nothing => {}
                    }
                }
                8 | 127 => {
                    t.typed.pop();
                }
                _ if t.typed.len() < MAX_TYPED => t.typed.push(c),
                _ => {}
            }
        }
    }

    /// Looks at the first SMB message of each side (NetBIOS session framing).
    fn smb(&mut self, ts: Ts, d: usize, rs: &mut Reassembler, out: &mut Vec<ProtoRecord>) {
        loop {
            let data = rs.data();
            if d == 0 && self.smb1_offer.is_some() {
                // The client's offer is known; only the server's answer matters now.
                let n = data.len();
                self.scanned[d] += n;
                rs.consume(n);
                return;
            }
            if data.len() < 4 {
                return;
            }
            let kind = data[0];
            let len = ((data[1] as usize) << 16) | ((data[2] as usize) << 8) | data[3] as usize;
            if kind != 0 {
                // Session request/response or keepalive (port 139): skip the frame.
                if len > 1024 {
                    self.finish(out);
                    return;
                }
                if data.len() < 4 + len {
                    return;
                }
                rs.consume(4 + len);
                self.scanned[d] += 4 + len;
                continue;
            }
            // Wait for the whole message, or its first 4 KiB.
            let want = 4 + len.min(4096);
            if data.len() < want {
                return;
            }
            let msg = &data[4..want];
            if msg.len() < 5 {
                self.finish(out);
                return;
            }
            match (&msg[..4], d) {
                (b"\xffSMB", 0) if msg[4] == 0x72 => {
                    self.identified = true;
                    self.smb1_offer = Some(msg.windows(6).any(|w| w == b"SMB 2."));
                    continue;
                }
                (b"\xffSMB", 1) => {
                    self.identified = true;
                    if self.smb1_offer.is_some() {
                        self.emit(ts, false, Some(true), out);
                    }
                    self.finish(out);
                }
                (b"\xfeSMB", _) => {
                    self.identified = true;
                    self.smb1_offer = None;
                    self.finish(out);
                }
                _ => self.finish(out),
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `(side, bytes)` in order and closes.
    fn run(kind: Kind, msgs: &[(usize, &[u8])]) -> Vec<CleartextRecord> {
        let mut s = LoginSession::new(kind);
        let mut rs = [Reassembler::new(), Reassembler::new()];
        let mut seq = [1u32, 1u32];
        let mut out = Vec::new();
        for (i, (d, bytes)) in msgs.iter().enumerate() {
            rs[*d].push(seq[*d], false, bytes);
            seq[*d] = seq[*d].wrapping_add(bytes.len() as u32);
            s.on_data(100 + i as i64, *d, &mut rs[*d], &mut out);
        }
        s.on_close(&mut out);
        out.into_iter()
            .map(|r| match r {
                ProtoRecord::Cleartext(c) => c,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn ftp_failed_then_accepted_login() {
        let r = run(
            Kind::Ftp,
            &[
                (1, b"220 ProFTPD Server\r\n"),
                (0, b"USER alice\r\n"),
                (1, b"331 Password required\r\n"),
                (0, b"PASS wrong\r\n"),
                (1, b"530 Login incorrect.\r\n"),
                (0, b"USER alice\r\nPASS secret\r\n"),
                (1, b"230 User alice logged in\r\n"),
                (0, b"USER bob\r\nPASS x\r\n"),
            ],
        );
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].protocol, "ftp");
        assert_eq!(r[0].user.as_deref(), Some("alice"));
        assert_eq!((r[0].credentials, r[0].success), (true, Some(false)));
        assert_eq!(r[1].success, Some(true));
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            !json.contains("secret") && !json.contains("wrong"),
            "{json}"
        );
    }

    #[test]
    fn starttls_ends_parsing() {
        let r = run(
            Kind::Ftp,
            &[
                (1, b"220 ready\r\n"),
                (0, b"AUTH TLS\r\n"),
                (1, b"234 go\r\n"),
                (0, b"USER x\r\nPASS y\r\n"),
            ],
        );
        assert!(r.is_empty());
        let r = run(
            Kind::Imap,
            &[
                (1, b"* OK IMAP4rev1\r\n"),
                (0, b"a1 STARTTLS\r\n"),
                (0, b"a2 LOGIN u p\r\n"),
            ],
        );
        assert!(r.is_empty());
        let r = run(
            Kind::Pop3,
            &[(1, b"+OK\r\n"), (0, b"STLS\r\nUSER u\r\nPASS p\r\n")],
        );
        assert!(r.is_empty());
    }

    #[test]
    fn pop3_and_imap_logins() {
        let r = run(
            Kind::Pop3,
            &[
                (1, b"+OK POP3 ready\r\n"),
                (0, b"USER carol\r\n"),
                (1, b"+OK\r\n"),
                (0, b"PASS pw\r\n"),
                (1, b"-ERR auth failed\r\n"),
            ],
        );
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].user.as_deref(), r[0].success),
            (Some("carol"), Some(false))
        );
        let r = run(
            Kind::Imap,
            &[
                (1, b"* OK ready\r\n"),
                (0, b"a001 CAPABILITY\r\n"),
                (1, b"* CAPABILITY IMAP4rev1\r\na001 OK done\r\n"),
                (0, b"a002 LOGIN \"dave smith\" pw\r\n"),
                (1, b"a002 OK LOGIN completed\r\n"),
            ],
        );
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].user.as_deref(), r[0].success),
            (Some("dave smith"), Some(true))
        );
        // AUTHENTICATE PLAIN with an initial response: user from the SASL message.
        let plain = STANDARD.encode(b"\0erin\0pw");
        let cmd = format!("t1 AUTHENTICATE PLAIN {plain}\r\n");
        let r = run(
            Kind::Imap,
            &[(1, b"* OK\r\n"), (0, cmd.as_bytes()), (1, b"t1 NO bad\r\n")],
        );
        assert_eq!(
            (r[0].user.as_deref(), r[0].success),
            (Some("erin"), Some(false))
        );
        // CRAM-MD5 is not cleartext.
        let r = run(
            Kind::Imap,
            &[(1, b"* OK\r\n"), (0, b"t1 AUTHENTICATE CRAM-MD5\r\n")],
        );
        assert!(r.is_empty());
    }

    #[test]
    fn wrong_banner_is_not_ours() {
        let r = run(
            Kind::Ftp,
            &[(1, b"SSH-2.0-OpenSSH\r\n"), (0, b"USER x\r\nPASS y\r\n")],
        );
        assert!(r.is_empty());
    }

    #[test]
    fn telnet_login_with_negotiation() {
        let r = run(
            Kind::Telnet,
            &[
                (1, &[255, 253, 24, 255, 253, 32]),
                (0, &[255, 251, 24, 255, 250, 24, 0, b'x', b't', 255, 240]),
                (1, b"\r\nOpenBSD (oof)\r\n\r\nlog"),
                (1, b"in: "),
                (0, b"fa"),
                (0, b"kx\x08e\r\0"),
                (1, b"fake\r\nPassword:"),
                (0, b"user\r\n"),
                (1, b"$ "),
            ],
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].protocol, "telnet");
        assert_eq!(r[0].user.as_deref(), Some("fake"));
        assert!(r[0].credentials);
        // A telnet session without a login is still reported (credentials false).
        let r = run(Kind::Telnet, &[(1, b"Welcome\r\n# "), (0, b"ls\r\n")]);
        assert_eq!(r.len(), 1);
        assert!(!r[0].credentials);
        // No server bytes: nothing.
        assert!(run(Kind::Telnet, &[(0, b"hello\r\n")]).is_empty());
    }

    fn nbss(msg: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, (msg.len() >> 8) as u8, msg.len() as u8];
        v.extend_from_slice(msg);
        v
    }

    fn smb1(cmd: u8, tail: &[u8]) -> Vec<u8> {
        let mut v = b"\xffSMB".to_vec();
        v.push(cmd);
        v.extend_from_slice(&[0; 27]);
        v.extend_from_slice(tail);
        v
    }

    #[test]
    fn smb1_negotiated_only_when_server_answers_smb1() {
        let legacy = smb1(0x72, b"\0\x0c\0\x02NT LM 0.12\0");
        let r = run(
            Kind::Smb,
            &[(0, &nbss(&legacy)), (1, &nbss(&smb1(0x72, &[0; 8])))],
        );
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].protocol, r[0].success), ("smb1", Some(true)));
        // Multi-protocol negotiate upgraded to SMB2 by the server: nothing.
        let multi = smb1(
            0x72,
            b"\0\x20\0\x02NT LM 0.12\0\x02SMB 2.002\0\x02SMB 2.???\0",
        );
        let mut smb2 = b"\xfeSMB".to_vec();
        smb2.extend_from_slice(&[0; 60]);
        assert!(run(Kind::Smb, &[(0, &nbss(&multi)), (1, &nbss(&smb2))]).is_empty());
        // SMB1-only offer and no reply: reported with an unknown outcome.
        let r = run(Kind::Smb, &[(0, &nbss(&legacy))]);
        assert_eq!((r.len(), r[0].success), (1, None));
        // SMB2 client.
        assert!(run(Kind::Smb, &[(0, &nbss(&smb2))]).is_empty());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u32 = 99;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for kind in [Kind::Ftp, Kind::Pop3, Kind::Imap, Kind::Telnet, Kind::Smb] {
            for _ in 0..100 {
                let msgs: Vec<(usize, Vec<u8>)> = (0..20)
                    .map(|_| {
                        let len = (next() % 300) as usize;
                        let mut v: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                        if next() % 3 == 0 {
                            v.extend_from_slice(b"\r\nPASS x\r\n");
                        }
                        ((next() % 2) as usize, v)
                    })
                    .collect();
                let refs: Vec<(usize, &[u8])> = msgs.iter().map(|(d, v)| (*d, &v[..])).collect();
                let _ = run(kind, &refs);
            }
            // Every prefix of a real exchange.
            let ex: &[u8] = b"220 hi\r\nUSER a\r\nPASS b\r\n230 ok\r\n";
            for n in 0..ex.len() {
                let _ = run(kind, &[(1, &ex[..n]), (0, &ex[..n])]);
            }
        }
    }
}
