//! A small real SMTP server on loopback (RFC 5321 over TCP, AUTH PLAIN,
//! STARTTLS or implicit TLS with a certificate from a CA made in the test)
//! with fault injection, for the digest tests. lettre talks to it as to any
//! relay.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// How the server speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain text, upgraded when the client sends STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
}

/// A certificate authority made for one test, and a server certificate for
/// 127.0.0.1 and localhost that it signed.
pub struct TestCa {
    /// The CA's certificate, PEM: what `ca_file` names.
    pub ca_pem: String,
    acceptor: TlsAcceptor,
}

impl TestCa {
    /// A new CA and server certificate (fresh keys every time).
    pub fn new() -> TestCa {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "gazette test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        TestCa {
            ca_pem: ca_cert.pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }
}

/// A fault the server injects for a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer `451` to RCPT TO once, then accept.
    TempFailOnce(String),
    /// Answer `451` to RCPT TO, always.
    TempFail(String),
    /// Answer `550` to RCPT TO, always.
    Reject(String),
    /// Close the connection in the middle of the DATA, once.
    DropInDataOnce(String),
    /// Never answer RCPT TO (the client waits until it is killed or times out).
    Stall(String),
    /// Accept this recipient's message (250 after the DATA), then never
    /// answer the connection's next command (QUIT, or the next MAIL).
    HoldAfterData(String),
}

impl Fault {
    fn recipient(&self) -> &str {
        match self {
            Fault::TempFailOnce(r)
            | Fault::TempFail(r)
            | Fault::Reject(r)
            | Fault::DropInDataOnce(r)
            | Fault::Stall(r)
            | Fault::HoldAfterData(r) => r,
        }
    }
}

/// A message the server accepted (answered 250 after the DATA).
#[derive(Debug, Clone)]
pub struct Received {
    /// MAIL FROM address.
    pub from: String,
    /// RCPT TO addresses.
    pub rcpt: Vec<String>,
    /// The message as sent, dot-stuffing removed.
    pub data: Vec<u8>,
    /// Whether it came over TLS.
    pub tls: bool,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    faults: Vec<Fault>,
    /// Every RCPT TO seen, answered or not.
    rcpt_seen: Vec<String>,
    /// Recipients whose RCPT TO is being held.
    stalled: Vec<String>,
    /// Decoded AUTH PLAIN credentials (user, password).
    auth: Vec<(String, String)>,
}

/// The running server.
#[derive(Clone)]
pub struct SmtpServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    tls: Option<(TlsMode, TlsAcceptor)>,
}

impl SmtpServer {
    /// Binds a loopback port and serves plain SMTP until the runtime ends.
    pub async fn start() -> SmtpServer {
        SmtpServer::serve(None).await
    }

    /// The same, speaking TLS with `ca`'s server certificate.
    pub async fn start_tls(mode: TlsMode, ca: &TestCa) -> SmtpServer {
        SmtpServer::serve(Some((mode, ca.acceptor.clone()))).await
    }

    async fn serve(tls: Option<(TlsMode, TlsAcceptor)>) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = SmtpServer {
            addr: listener.local_addr().unwrap(),
            state: Arc::default(),
            tls,
        };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = s.connection(sock).await;
                });
            }
        });
        server
    }

    /// One client connection, through TLS as configured.
    async fn connection(&self, sock: TcpStream) -> std::io::Result<()> {
        match &self.tls {
            None => self.session(sock, false).await.map(drop),
            Some((TlsMode::Implicit, acceptor)) => {
                let sock = acceptor.accept(sock).await?;
                self.session(sock, true).await.map(drop)
            }
            Some((TlsMode::Starttls, acceptor)) => {
                if let Some(plain) = self.session(sock, false).await? {
                    let sock = acceptor.accept(plain).await?;
                    self.session(sock, true).await?;
                }
                Ok(())
            }
        }
    }

    /// The port to configure.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Adds a fault.
    pub fn inject(&self, f: Fault) {
        self.state.lock().unwrap().faults.push(f);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// Messages accepted so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Accepted messages addressed to `rcpt`.
    pub fn received_by(&self, rcpt: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|m| m.rcpt.iter().any(|r| r.eq_ignore_ascii_case(rcpt)))
            .collect()
    }

    /// How many times RCPT TO named `rcpt`.
    pub fn rcpt_count(&self, rcpt: &str) -> usize {
        let st = self.state.lock().unwrap();
        st.rcpt_seen
            .iter()
            .filter(|r| r.eq_ignore_ascii_case(rcpt))
            .count()
    }

    /// Recipients whose RCPT TO is held right now.
    pub fn stalled(&self) -> Vec<String> {
        self.state.lock().unwrap().stalled.clone()
    }

    /// AUTH PLAIN credentials received.
    pub fn auth(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().auth.clone()
    }

    /// The fault for `rcpt`, consuming it when it happens once.
    fn fault(&self, rcpt: &str, stage: &str) -> Option<Fault> {
        let mut st = self.state.lock().unwrap();
        let i = st.faults.iter().position(|f| {
            f.recipient().eq_ignore_ascii_case(rcpt)
                && match (f, stage) {
                    (Fault::DropInDataOnce(_) | Fault::HoldAfterData(_), "data") => true,
                    (Fault::DropInDataOnce(_) | Fault::HoldAfterData(_), _) | (_, "data") => false,
                    _ => true,
                }
        })?;
        let f = st.faults[i].clone();
        if matches!(f, Fault::TempFailOnce(_) | Fault::DropInDataOnce(_)) {
            st.faults.remove(i);
        }
        Some(f)
    }

    /// Speaks SMTP on `sock` until QUIT or a closed connection; returns the
    /// stream when the client asked for STARTTLS (the caller then upgrades it).
    async fn session<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        sock: S,
        tls: bool,
    ) -> std::io::Result<Option<S>> {
        let (r, mut w) = tokio::io::split(sock);
        let mut r = BufReader::new(r);
        let offer_starttls = !tls && matches!(self.tls, Some((TlsMode::Starttls, _)));
        if !(tls && matches!(self.tls, Some((TlsMode::Starttls, _)))) {
            // After STARTTLS the client speaks first (EHLO again).
            w.write_all(b"220 localhost ESMTP test\r\n").await?;
        }
        let mut from = String::new();
        let mut rcpt: Vec<String> = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).await? == 0 {
                return Ok(None);
            }
            let cmd = line.trim_end().to_string();
            let upper = cmd.to_ascii_uppercase();
            if upper.starts_with("EHLO") {
                if offer_starttls {
                    w.write_all(b"250-localhost\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
                        .await?;
                } else {
                    w.write_all(
                        b"250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 AUTH PLAIN\r\n",
                    )
                    .await?;
                }
            } else if upper == "STARTTLS" && offer_starttls {
                w.write_all(b"220 2.0.0 Ready to start TLS\r\n").await?;
                return Ok(Some(r.into_inner().unsplit(w)));
            } else if upper.starts_with("HELO") {
                w.write_all(b"250 localhost\r\n").await?;
            } else if upper.starts_with("AUTH PLAIN") {
                let b64 = cmd[10..].trim();
                let decoded = decode_base64(b64);
                let parts: Vec<String> = decoded
                    .split(|b| *b == 0)
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
                if parts.len() == 3 {
                    self.state
                        .lock()
                        .unwrap()
                        .auth
                        .push((parts[1].clone(), parts[2].clone()));
                    w.write_all(b"235 2.7.0 Authentication successful\r\n")
                        .await?;
                } else {
                    w.write_all(b"501 5.5.2 Cannot decode\r\n").await?;
                }
            } else if upper.starts_with("MAIL FROM:") {
                from = addr_of(&cmd);
                rcpt.clear();
                w.write_all(b"250 2.1.0 Ok\r\n").await?;
            } else if upper.starts_with("RCPT TO:") {
                let to = addr_of(&cmd);
                self.state.lock().unwrap().rcpt_seen.push(to.clone());
                match self.fault(&to, "rcpt") {
                    Some(Fault::TempFailOnce(_) | Fault::TempFail(_)) => {
                        w.write_all(b"451 4.7.1 Greylisted, try again later\r\n")
                            .await?;
                    }
                    Some(Fault::Reject(_)) => {
                        w.write_all(b"550 5.1.1 No such user here\r\n").await?;
                    }
                    Some(Fault::Stall(_)) => {
                        self.state.lock().unwrap().stalled.push(to.clone());
                        // Hold the reply until the client goes away.
                        let mut sink = String::new();
                        while r.read_line(&mut sink).await.unwrap_or(0) != 0 {
                            sink.clear();
                        }
                        self.state.lock().unwrap().stalled.retain(|s| *s != to);
                        return Ok(None);
                    }
                    _ => {
                        rcpt.push(to);
                        w.write_all(b"250 2.1.5 Ok\r\n").await?;
                    }
                }
            } else if upper == "DATA" {
                let drop = rcpt
                    .iter()
                    .any(|t| matches!(self.fault(t, "data"), Some(Fault::DropInDataOnce(_))));
                w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = Vec::new();
                let mut l = String::new();
                let mut lines = 0;
                loop {
                    l.clear();
                    if r.read_line(&mut l).await? == 0 {
                        return Ok(None);
                    }
                    lines += 1;
                    if drop && lines == 5 {
                        // The connection dies with the message half received.
                        return Ok(None);
                    }
                    if l == ".\r\n" || l == ".\n" {
                        break;
                    }
                    let text = l.strip_prefix('.').unwrap_or(&l);
                    data.extend_from_slice(text.as_bytes());
                }
                let hold = rcpt
                    .iter()
                    .find(|t| matches!(self.fault(t, "data"), Some(Fault::HoldAfterData(_))))
                    .cloned();
                let n = {
                    let mut st = self.state.lock().unwrap();
                    st.received.push(Received {
                        from: from.clone(),
                        rcpt: std::mem::take(&mut rcpt),
                        data,
                        tls,
                    });
                    st.received.len()
                };
                w.write_all(format!("250 2.0.0 Ok: queued as {n}\r\n").as_bytes())
                    .await?;
                if let Some(to) = hold {
                    let mut next = String::new();
                    if r.read_line(&mut next).await.unwrap_or(0) == 0 {
                        return Ok(None);
                    }
                    self.state.lock().unwrap().stalled.push(to.clone());
                    next.clear();
                    while r.read_line(&mut next).await.unwrap_or(0) != 0 {
                        next.clear();
                    }
                    self.state.lock().unwrap().stalled.retain(|s| *s != to);
                    return Ok(None);
                }
            } else if upper == "RSET" {
                rcpt.clear();
                w.write_all(b"250 2.0.0 Ok\r\n").await?;
            } else if upper == "NOOP" {
                w.write_all(b"250 2.0.0 Ok\r\n").await?;
            } else if upper == "QUIT" {
                w.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(None);
            } else {
                w.write_all(b"502 5.5.2 Command not recognized\r\n").await?;
            }
        }
    }
}

/// Waits up to 20 s for `cond`.
pub async fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..400 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn addr_of(cmd: &str) -> String {
    let after = cmd.split_once(':').map(|x| x.1).unwrap_or("");
    let after = after.trim();
    match (after.find('<'), after.find('>')) {
        (Some(a), Some(b)) if a < b => after[a + 1..b].to_string(),
        _ => after.split_whitespace().next().unwrap_or("").to_string(),
    }
}

fn decode_base64(s: &str) -> Vec<u8> {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let Some(v) = T.iter().position(|t| *t == c) else {
            continue;
        };
        buf = (buf << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}
