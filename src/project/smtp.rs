//! Mail delivery over SMTP (feature `smtp`), with lettre: plain (a local relay or test sink),
//! STARTTLS, or implicit TLS, using rustls with the webpki roots.

use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{SmtpTransport, Transport};

use crate::error::{Error, Result};
use crate::project::mail::{Mailer, OutboxMessage};

/// How to reach the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// No encryption: only for a relay on the same machine (or a test sink).
    Plain,
    /// Upgrade with STARTTLS (usually port 587); refuses servers that cannot.
    StartTls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

/// Delivers mail through an SMTP server.
///
/// ```no_run
/// # fn main() -> larder::Result<()> {
/// use larder::{Db, SmtpMailer, SmtpSecurity};
/// let mailer = SmtpMailer::new("smtp.example.com", 587, SmtpSecurity::StartTls, "app@example.com")?
///     .credentials("app@example.com", "app password");
/// let db = Db::builder().mailer(mailer).in_memory()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SmtpMailer {
    transport: SmtpTransport,
    from: Mailbox,
    host: String,
    port: u16,
    security: SmtpSecurity,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl SmtpMailer {
    /// A mailer for `host:port`, sending as `from`.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed `from` address or an unusable host.
    pub fn new(host: &str, port: u16, security: SmtpSecurity, from: &str) -> Result<SmtpMailer> {
        let from: Mailbox = from.parse().map_err(|_| {
            Error::invalid(format!("invalid sender address `{}`", from.escape_debug()))
        })?;
        let invalid_host =
            |_| Error::invalid(format!("unusable SMTP host `{}`", host.escape_debug()));
        let builder = match security {
            SmtpSecurity::Plain => SmtpTransport::builder_dangerous(host),
            SmtpSecurity::StartTls => SmtpTransport::starttls_relay(host).map_err(invalid_host)?,
            SmtpSecurity::Tls => SmtpTransport::relay(host).map_err(invalid_host)?,
        };
        Ok(SmtpMailer {
            transport: builder.port(port).build(),
            from,
            host: host.to_owned(),
            port,
            security,
        })
    }

    /// Logs in with a user name and password.
    pub fn credentials(mut self, user: &str, password: &str) -> Self {
        let builder = match self.security {
            SmtpSecurity::Plain => SmtpTransport::builder_dangerous(&self.host),
            SmtpSecurity::StartTls => match SmtpTransport::starttls_relay(&self.host) {
                Ok(builder) => builder,
                Err(_) => return self,
            },
            SmtpSecurity::Tls => match SmtpTransport::relay(&self.host) {
                Ok(builder) => builder,
                Err(_) => return self,
            },
        };
        self.transport = builder
            .port(self.port)
            .credentials(Credentials::new(user.to_owned(), password.to_owned()))
            .build();
        self
    }
}

type DeliveryError = Box<dyn std::error::Error + Send + Sync>;

impl Mailer for SmtpMailer {
    fn deliver(&self, entry: &OutboxMessage) -> std::result::Result<(), DeliveryError> {
        let message = &entry.message;
        let from = match &message.from {
            Some(from) => from.parse::<Mailbox>()?,
            None => self.from.clone(),
        };
        let mut builder = lettre::Message::builder()
            .from(from)
            .subject(message.subject.clone().unwrap_or_default());
        for to in &message.to {
            builder = builder.to(to.parse()?);
        }
        for cc in &message.cc {
            builder = builder.cc(cc.parse()?);
        }
        for bcc in &message.bcc {
            builder = builder.bcc(bcc.parse()?);
        }
        let text = message.text.clone().unwrap_or_else(|| {
            // A template without content: list its variables, so the mail is still useful.
            message
                .variables
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}: {}\n",
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                    )
                })
                .collect()
        });
        let email = match &message.html {
            Some(html) => {
                builder.multipart(MultiPart::alternative_plain_html(text, html.clone()))?
            }
            None => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text),
            )?,
        };
        self.transport.send(&email)?;
        Ok(())
    }
}
