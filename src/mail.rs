//! lettre transports: builds one MIME message per recipient and hands it to
//! the file outbox or an SMTP server. Never renders or queries.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use lettre::message::MultiPart;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
/// An email address, and one with a display name: parsed once, in the configuration.
pub use lettre::{Address, message::Mailbox};
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{DigestConfig, SmtpSecurity, Transport};

/// Why a message could not be built or a mailer set up.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// An address does not parse as a mailbox.
    #[error("{0:?} is not an email address")]
    Address(String),
    /// lettre refused to build the message.
    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),
    /// `password_env` names a variable that is not set.
    #[error("the SMTP password variable {0} is not set")]
    MissingPassword(String),
    /// The SMTP transport could not be set up (TLS parameters).
    #[error("cannot set up SMTP to {host}: {source}")]
    Setup {
        /// The server.
        host: String,
        /// lettre's error.
        source: lettre::transport::smtp::Error,
    },
    /// `[digest.smtp] ca_file` could not be read or holds no certificate.
    #[error("cannot use the CA file {path} ([digest.smtp] ca_file): {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The outbox folder could not be created.
    #[error("cannot create the outbox {path}: {source}")]
    Outbox {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A message the transport did not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reply}")]
pub struct SendError {
    /// The server's reply or the transport's error.
    pub reply: String,
    /// A 5xx reply: retrying will not help.
    pub permanent: bool,
    /// The TLS handshake failed (an untrusted or invalid certificate, no
    /// common protocol): every other message of this run would fail the
    /// same way, so the run stops; the next run tries again.
    pub stops_run: bool,
}

/// Everything one recipient's copy of the digest is made of.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// From header.
    pub from: Mailbox,
    /// The one recipient.
    pub to: Mailbox,
    /// Subject (encoded per RFC 2047 when not ASCII).
    pub subject: String,
    /// Message-ID, with angle brackets.
    pub message_id: String,
    /// Date header.
    pub date: SystemTime,
    /// The HTML alternative.
    pub html: String,
    /// The plain-text alternative.
    pub text: String,
    /// List-Id header value.
    pub list_id: String,
    /// Unsubscribe URL, first in List-Unsubscribe.
    pub unsubscribe_url: Option<String>,
    /// The URL takes an RFC 8058 one-click POST (it is https): adds
    /// `List-Unsubscribe-Post: List-Unsubscribe=One-Click`.
    pub one_click: bool,
    /// Unsubscribe address, for List-Unsubscribe.
    pub unsubscribe_mailto: Option<String>,
}

/// Parses `addr` or `Name <addr>`.
pub fn mailbox(s: &str) -> Result<Mailbox, MailError> {
    s.trim()
        .parse()
        .map_err(|_| MailError::Address(s.trim().to_string()))
}

macro_rules! text_header {
    ($ty:ident, $name:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone)]
        struct $ty(String);

        impl Header for $ty {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($name)
            }

            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok($ty(s.to_string()))
            }

            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}

text_header!(ListId, "List-Id", "RFC 2919 list identifier.");
text_header!(
    ListUnsubscribe,
    "List-Unsubscribe",
    "RFC 2369 unsubscribe links."
);
text_header!(
    ListUnsubscribePost,
    "List-Unsubscribe-Post",
    "RFC 8058 one-click unsubscribe."
);

/// Builds the `multipart/alternative` message for one recipient.
pub fn build_message(o: &Outgoing) -> Result<Message, MailError> {
    let mut b = Message::builder()
        .from(o.from.clone())
        .to(o.to.clone())
        .subject(o.subject.clone())
        .date(o.date)
        .message_id(Some(o.message_id.clone()))
        .header(ListId(o.list_id.clone()));
    let mut links = Vec::new();
    if let Some(url) = &o.unsubscribe_url {
        links.push(format!("<{url}>"));
    }
    if let Some(addr) = &o.unsubscribe_mailto {
        links.push(format!("<mailto:{addr}?subject=unsubscribe>"));
    }
    if !links.is_empty() {
        b = b.header(ListUnsubscribe(links.join(", ")));
    }
    if o.unsubscribe_url.is_some() && o.one_click {
        b = b.header(ListUnsubscribePost("List-Unsubscribe=One-Click".into()));
    }
    Ok(b.multipart(MultiPart::alternative_plain_html(
        o.text.clone(),
        o.html.clone(),
    ))?)
}

/// A configured transport with its retry policy.
pub enum Mailer {
    /// `.eml` files in the outbox.
    File(AsyncFileTransport<Tokio1Executor>),
    /// An SMTP server.
    Smtp(Box<SmtpServer>),
}

/// How to reach and log in to the SMTP server, and how to retry.
pub struct SmtpServer {
    host: String,
    port: u16,
    tls: Tls,
    timeout: Duration,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// Further attempts after a temporary failure.
    pub retries: u32,
    /// Wait before the first retry, doubled for each further one.
    pub retry_delay: Duration,
}

impl SmtpServer {
    /// `host:port`, for messages.
    fn name(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Connects, upgrades to TLS as configured, and logs in.
    ///
    /// Plain and STARTTLS connections are opened here with `TCP_NODELAY`:
    /// lettre writes the end of the data (`.`) apart from the message, and
    /// with Nagle's algorithm the kernel would hold it until the server
    /// acknowledged the body (a delayed ACK, 40 ms). A process killed in
    /// that time still has the `.` sent by its kernel, so the server takes
    /// a message gazette never recorded: the duplicate window. Implicit TLS
    /// goes through lettre's own connect (it offers no way to set it).
    async fn connect(&self) -> Result<AsyncSmtpConnection, AttemptError> {
        if let Tls::Wrapper(p) = &self.tls {
            let mut conn = AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.timeout),
                &self.hello,
                Some(p.clone()),
                None,
            )
            .await?;
            self.login(&mut conn).await?;
            return Ok(conn);
        }
        let tcp = tokio::time::timeout(
            self.timeout,
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| AttemptError::Connect("connection timed out".into()))?
        .map_err(|e| AttemptError::Connect(e.to_string()))?;
        tcp.set_nodelay(true)
            .map_err(|e| AttemptError::Connect(e.to_string()))?;
        let mut conn =
            AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await?;
        if let Tls::Required(p) = &self.tls {
            conn.starttls(p.clone(), &self.hello).await?;
        }
        self.login(&mut conn).await?;
        Ok(conn)
    }

    async fn login(&self, conn: &mut AsyncSmtpConnection) -> Result<(), AttemptError> {
        if let Some(c) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, c).await?;
        }
        Ok(())
    }
}

/// Why one attempt at a message failed.
#[derive(Debug)]
enum AttemptError {
    /// No TCP connection to the server (refused, unreachable, timed out).
    Connect(String),
    /// The SMTP conversation failed.
    Smtp(lettre::transport::smtp::Error),
}

impl From<lettre::transport::smtp::Error> for AttemptError {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        AttemptError::Smtp(e)
    }
}

impl Mailer {
    /// Sets up the transport `cfg` names; reads the SMTP password from the environment.
    pub fn new(cfg: &DigestConfig) -> Result<Mailer, MailError> {
        match (cfg.transport, &cfg.smtp) {
            (Transport::File, _) | (Transport::Smtp, None) => {
                std::fs::create_dir_all(&cfg.outbox).map_err(|source| MailError::Outbox {
                    path: cfg.outbox.clone(),
                    source,
                })?;
                Ok(Mailer::File(AsyncFileTransport::new(&cfg.outbox)))
            }
            (Transport::Smtp, Some(smtp)) => {
                let setup = |source| MailError::Setup {
                    host: smtp.host.clone(),
                    source,
                };
                let parameters = || -> Result<TlsParameters, MailError> {
                    let mut b = TlsParameters::builder(smtp.host.clone());
                    if let Some(path) = &smtp.ca_file {
                        b = b.add_root_certificate(ca_certificate(path)?);
                    }
                    b.build().map_err(setup)
                };
                let tls = match smtp.security {
                    SmtpSecurity::None => Tls::None,
                    SmtpSecurity::Starttls => Tls::Required(parameters()?),
                    SmtpSecurity::Tls => Tls::Wrapper(parameters()?),
                };
                let credentials = match &smtp.username {
                    Some(user) => {
                        let password = match &smtp.password_env {
                            Some(var) => std::env::var(var)
                                .map_err(|_| MailError::MissingPassword(var.clone()))?,
                            None => String::new(),
                        };
                        Some(Credentials::new(user.clone(), password))
                    }
                    None => None,
                };
                Ok(Mailer::Smtp(Box::new(SmtpServer {
                    host: smtp.host.clone(),
                    port: smtp.port,
                    tls,
                    timeout: smtp.timeout,
                    credentials,
                    hello: ClientId::default(),
                    retries: smtp.retries,
                    retry_delay: smtp.retry_delay,
                })))
            }
        }
    }

    /// A sending session: messages sent one after another, each reported
    /// as soon as the server accepted it.
    pub fn session(&self) -> Session<'_> {
        Session {
            mailer: self,
            conn: None,
        }
    }
}

/// Messages sent one after another, one SMTP connection each: the message
/// is reported as soon as the server's 250 arrives, and the connection's
/// QUIT waits until the next message or [`Session::close`], so the caller
/// records the delivery first. (One connection per message, as lettre
/// does, rather than one for all: a kill lands in the instant between the
/// server taking a message and gazette recording it less often when each
/// message also carries its connection's set-up.)
pub struct Session<'a> {
    mailer: &'a Mailer,
    conn: Option<AsyncSmtpConnection>,
}

impl Session<'_> {
    /// Sends one message; temporary SMTP failures (4xx, lost connection,
    /// timeout) are retried with exponential backoff. Returns the server's
    /// reply (or the outbox file's id) as soon as the server accepted the
    /// message: nothing else is said to the server before the caller can
    /// record it.
    pub async fn send(&mut self, message: &Message) -> Result<String, SendError> {
        self.quit_previous().await;
        let server = match self.mailer {
            Mailer::File(t) => {
                return t
                    .send(message.clone())
                    .await
                    .map(|id| format!("written to the outbox as {id}.eml"))
                    .map_err(|e| SendError {
                        reply: format!("cannot write to the outbox: {e}"),
                        permanent: false,
                        stops_run: false,
                    });
            }
            Mailer::Smtp(server) => server,
        };
        let envelope = message.envelope();
        let raw = message.formatted();
        let mut attempt = 0u32;
        loop {
            let e = match self.try_send(server, envelope, &raw).await {
                Ok(r) => {
                    let text: Vec<&str> = r.message().collect();
                    return Ok(format!("{} {}", r.code(), text.join(" ")));
                }
                Err(AttemptError::Smtp(e)) => e,
                Err(AttemptError::Connect(e)) => {
                    let reply = format!("cannot connect to {}: {e}", server.name());
                    if attempt >= server.retries {
                        return Err(SendError {
                            reply,
                            permanent: false,
                            stops_run: false,
                        });
                    }
                    attempt += 1;
                    let wait = server
                        .retry_delay
                        .saturating_mul(1 << (attempt - 1).min(16));
                    tracing::warn!(
                        "{reply}; retry {attempt} of {} in {}",
                        server.retries,
                        humantime::format_duration(wait)
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            if let Some(cause) = tls_failure(&e) {
                return Err(SendError {
                    reply: format!("TLS with {} failed: {cause}", server.name()),
                    permanent: false,
                    stops_run: true,
                });
            }
            if e.is_permanent() || attempt >= server.retries {
                return Err(SendError {
                    reply: e.to_string(),
                    permanent: e.is_permanent(),
                    stops_run: false,
                });
            }
            let wait = server.retry_delay.saturating_mul(1 << attempt.min(16));
            attempt += 1;
            tracing::warn!(
                "temporary SMTP failure from {}: {e}; retry {attempt} of {} in {}",
                server.name(),
                server.retries,
                humantime::format_duration(wait)
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt over a new connection. A connection that failed is
    /// dropped (lettre already closed it); a sound one is kept for its QUIT.
    async fn try_send(
        &mut self,
        server: &SmtpServer,
        envelope: &lettre::address::Envelope,
        raw: &[u8],
    ) -> Result<lettre::transport::smtp::response::Response, AttemptError> {
        let mut conn = server.connect().await?;
        let result = conn.send(envelope, raw).await;
        if !conn.has_broken() {
            self.conn = Some(conn);
        }
        Ok(result?)
    }

    /// Says QUIT on the last message's connection, once it was recorded.
    async fn quit_previous(&mut self) {
        if let Some(mut c) = self.conn.take() {
            c.abort().await;
        }
    }

    /// Ends the session politely (QUIT), after the last message was recorded.
    pub async fn close(mut self) {
        self.quit_previous().await;
    }
}

/// The certificates of a PEM file, to trust besides the system's.
fn ca_certificate(path: &std::path::Path) -> Result<Certificate, MailError> {
    let err = |reason: String| MailError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    // lettre reads PEM blocks and skips everything else: an empty list
    // would pass silently.
    if memchr::memmem::find(&pem, b"-----BEGIN CERTIFICATE-----").is_none() {
        return Err(err(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into(),
        ));
    }
    Certificate::from_pem(&pem).map_err(|e| err(e.to_string()))
}

/// What went wrong in the TLS handshake, when that is why `e` happened:
/// rustls's own error (an untrusted certificate, a name mismatch, no common
/// protocol…), with a hint for the common case of a private CA.
fn tls_failure(e: &lettre::transport::smtp::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        // rustls errors reach lettre inside the `io::Error` of the TLS stream.
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            .or_else(|| err.downcast_ref::<rustls::Error>());
        if let Some(tls) = inner {
            let hint = match tls {
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => {
                    " (the certificate is signed by a CA this machine does not trust: set [digest.smtp] ca_file to that CA's PEM file)"
                }
                _ => "",
            };
            return Some(format!("{tls}{hint}"));
        }
        source = err.source();
    }
    e.is_tls().then(|| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn digest(smtp: &str) -> DigestConfig {
        let text = format!(
            "[digest]\nfrom = \"d@example.org\"\ntransport = \"smtp\"\n[digest.smtp]\nhost = \"smtp.example.org\"\n{smtp}"
        );
        Config::parse(std::path::Path::new("feeds.toml"), &text)
            .unwrap()
            .digests
            .remove(0)
    }

    #[test]
    fn smtp_transports_build_for_every_security_mode() {
        for security in ["starttls", "tls", "none"] {
            let cfg = digest(&format!("security = \"{security}\"\n"));
            assert!(matches!(
                Mailer::new(&cfg),
                Ok(Mailer::Smtp(s)) if s.retries == 3
            ));
        }
    }

    #[test]
    fn a_missing_password_variable_is_named() {
        let cfg = digest("username = \"u\"\npassword_env = \"GAZETTE_TEST_UNSET_PASSWORD_VAR\"\n");
        let e = Mailer::new(&cfg).err().unwrap();
        assert_eq!(
            e.to_string(),
            "the SMTP password variable GAZETTE_TEST_UNSET_PASSWORD_VAR is not set"
        );
    }

    #[test]
    fn headers_are_encoded_and_list_headers_present() {
        let o = Outgoing {
            from: mailbox("Gazette <d@example.org>").unwrap(),
            to: mailbox("a@example.org").unwrap(),
            subject: "Veille — 3 articles".into(),
            message_id: "<m1@example.org>".into(),
            date: SystemTime::UNIX_EPOCH,
            html: "<p>x</p>".into(),
            text: "x".into(),
            list_id: "Watch <digest.example.org>".into(),
            unsubscribe_url: None,
            one_click: false,
            unsubscribe_mailto: Some("leave@example.org".into()),
        };
        let raw = String::from_utf8(build_message(&o).unwrap().formatted()).unwrap();
        assert!(
            raw.contains("Subject: Veille =?utf-8?b?4oCU?= 3 articles"),
            "{raw}"
        );
        assert!(raw.contains("Message-ID: <m1@example.org>"), "{raw}");
        assert!(raw.contains("List-Id: Watch <digest.example.org>"), "{raw}");
        assert!(
            raw.contains("List-Unsubscribe: <mailto:leave@example.org?subject=unsubscribe>"),
            "{raw}"
        );
        assert!(
            !raw.contains("List-Unsubscribe-Post"),
            "only with a URL: {raw}"
        );
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(mailbox("not an address").is_err());
    }
}
