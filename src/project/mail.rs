//! Outgoing mail. Every message is kept in an outbox table in the file: readable by
//! administrators (and by tests through the fixture), so account flows can be tested without a
//! mail server.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::clock::format_rfc3339;
use crate::store::names::fold_email;
use crate::store::schema::{OUTBOX, SMS_OUTBOX};

/// Most recipients of one message (to, cc and bcc together).
const MAX_RECIPIENTS: usize = 50;
/// Largest subject, text or HTML part, in bytes.
const MAX_PART_BYTES: usize = 256 * 1024;

/// Delivers mail beyond the outbox (SMTP, an HTTP mail API, a test double). Every message is
/// recorded in the outbox first, whatever the mailer does.
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Delivers one message.
    ///
    /// # Errors
    /// Any delivery failure; `Mail::send` reports it to its caller, while the account flows
    /// (which must answer the same for every email) do not.
    fn deliver(
        &self,
        message: &OutboxMessage,
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// Sends text messages (phone login codes) beyond the SMS outbox, which records every message
/// whatever the sender does.
pub trait SmsSender: Send + Sync + std::fmt::Debug {
    /// Sends one text message.
    ///
    /// # Errors
    /// Any delivery failure (the phone-login flow does not report it: it answers the same for
    /// every number).
    fn send_sms(
        &self,
        message: &SmsMessage,
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// A text message in the SMS outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsMessage {
    /// Its id (time-ordered).
    pub id: String,
    /// When it was sent (RFC 3339).
    pub sent_at: String,
    /// The phone number.
    pub to: String,
    /// The text.
    pub text: String,
    /// The one-time code it carries, as a structured field (for tests and audits).
    pub code: Option<String>,
}

/// A message to send: `subject` with `text` and/or `html`, or a `template` with `variables`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MailMessage {
    /// Recipients.
    pub to: Vec<String>,
    /// Copy recipients.
    #[serde(default)]
    pub cc: Vec<String>,
    /// Blind copy recipients.
    #[serde(default)]
    pub bcc: Vec<String>,
    /// The sender shown, if not the default.
    #[serde(default)]
    pub from: Option<String>,
    /// The subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// The plain-text body.
    #[serde(default)]
    pub text: Option<String>,
    /// The HTML body.
    #[serde(default)]
    pub html: Option<String>,
    /// A template name (`welcome`, `otp`, `password-reset`, `invite`, or your own).
    #[serde(default)]
    pub template: Option<String>,
    /// Values for the template.
    #[serde(default)]
    pub variables: Map<String, Value>,
}

/// A message in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// Its id (time-ordered).
    pub id: String,
    /// When it was sent (RFC 3339).
    pub sent_at: String,
    /// The message.
    pub message: MailMessage,
}

/// A mailer's failure, kept as the source of the error `send_mail` returns.
#[derive(Debug)]
struct MailDeliveryFailed(String);

impl std::fmt::Display for MailDeliveryFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mail delivery failed: {}", self.0)
    }
}

impl std::error::Error for MailDeliveryFailed {}

impl MailMessage {
    fn validate(&mut self) -> Result<()> {
        let mut count = 0;
        for list in [&mut self.to, &mut self.cc, &mut self.bcc] {
            for address in list.iter_mut() {
                *address = fold_email(address).map_err(|_| {
                    Error::invalid(format!("invalid recipient `{}`", address.escape_debug()))
                })?;
                count += 1;
            }
        }
        if self.to.is_empty() {
            return Err(Error::invalid(
                "a message needs at least one recipient in `to`",
            ));
        }
        if count > MAX_RECIPIENTS {
            return Err(Error::invalid(format!(
                "at most {MAX_RECIPIENTS} recipients"
            )));
        }
        let has_content = self.subject.is_some() && (self.text.is_some() || self.html.is_some());
        if !has_content && self.template.is_none() {
            return Err(Error::invalid(
                "give a subject with text or html, or a template",
            ));
        }
        for part in [&self.subject, &self.text, &self.html]
            .into_iter()
            .flatten()
        {
            if part.len() > MAX_PART_BYTES {
                return Err(Error::too_large("a message part", MAX_PART_BYTES as u64));
            }
        }
        Ok(())
    }
}

/// Where mail and text messages go beyond the outbox (set when the database opens).
#[derive(Default)]
pub(crate) struct Mailers {
    pub(crate) mailer: Option<std::sync::Arc<dyn Mailer>>,
    pub(crate) sms_sender: Option<std::sync::Arc<dyn SmsSender>>,
}

/// Outgoing mail and text messages, and their outboxes: `db.mail()`.
#[derive(Debug, Clone, Copy)]
pub struct Mail<'a> {
    pub(crate) store: &'a Store,
}

impl<'a> Mail<'a> {
    pub(crate) fn new(store: &'a Store) -> Self {
        Mail { store }
    }
}

impl Mail<'_> {
    /// Sends a message: it is validated and kept in the outbox. Returns its id.
    ///
    /// # Errors
    /// `InvalidInput` for no or malformed recipients, or no content.
    ///
    /// ```
    /// # fn main() -> larder::Result<()> {
    /// use larder::MailMessage;
    /// let db = larder::Db::in_memory()?;
    /// let message = MailMessage {
    ///     to: vec!["ada@example.com".into()],
    ///     subject: Some("Hello".into()),
    ///     text: Some("Welcome aboard".into()),
    ///     ..MailMessage::default()
    /// };
    /// db.mail().send(message)?;
    /// assert_eq!(db.mail().outbox()?[0].message.subject.as_deref(), Some("Hello"));
    /// # Ok(()) }
    /// ```
    pub fn send(&self, mut message: MailMessage) -> Result<String> {
        message.validate()?;
        let id = self.store.new_id();
        let entry = OutboxMessage {
            id: id.clone(),
            sent_at: format_rfc3339(self.store.now_micros()),
            message,
        };
        let json = serde_json::to_string(&entry).map_err(Error::internal)?;
        self.store.write(|txn| {
            txn.open_table(OUTBOX)?.insert(id.as_str(), json.as_str())?;
            Ok(())
        })?;
        if let Some(mailer) = self.store.state::<Mailers>()?.mailer.as_deref() {
            mailer.deliver(&entry).map_err(|e| {
                Error::with_source(
                    crate::error::ErrorKind::Internal,
                    MailDeliveryFailed(e.to_string()),
                )
            })?;
        }
        Ok(id)
    }

    /// Sends a message for an account flow: recorded and delivered like [`Mail::send`](crate::Mail::send), but
    /// a delivery failure is not reported (the flow answers the same for every email).
    pub(crate) fn send_flow_mail(&self, message: MailMessage) -> Result<()> {
        match self.send(message) {
            Err(e) if matches!(e.kind(), crate::error::ErrorKind::Internal) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Records a text message in the SMS outbox and hands it to the configured sender; a
    /// delivery failure is not reported (see [`SmsSender`]).
    pub(crate) fn send_sms(&self, to: &str, text: String, code: Option<String>) -> Result<()> {
        let message = SmsMessage {
            id: self.store.new_id(),
            sent_at: format_rfc3339(self.store.now_micros()),
            to: to.to_owned(),
            text,
            code,
        };
        let json = serde_json::to_string(&message).map_err(Error::internal)?;
        self.store.write(|txn| {
            txn.open_table(SMS_OUTBOX)?
                .insert(message.id.as_str(), json.as_str())?;
            Ok(())
        })?;
        if let Some(sender) = self.store.state::<Mailers>()?.sms_sender.as_deref() {
            let _ = sender.send_sms(&message);
        }
        Ok(())
    }

    /// Every text message sent, oldest first.
    ///
    /// # Errors
    /// Only storage failures.
    pub fn sms_outbox(&self) -> Result<Vec<SmsMessage>> {
        self.store.read(|txn| {
            let mut out = Vec::new();
            for entry in txn.open_table(SMS_OUTBOX)?.iter()? {
                let (_, json) = entry?;
                out.push(serde_json::from_str(json.value()).map_err(Error::internal)?);
            }
            Ok(out)
        })
    }

    /// Every message sent, oldest first.
    ///
    /// # Errors
    /// Only storage failures.
    pub fn outbox(&self) -> Result<Vec<OutboxMessage>> {
        self.store.read(|txn| {
            let table = txn.open_table(OUTBOX)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (_, json) = entry?;
                out.push(serde_json::from_str(json.value()).map_err(Error::internal)?);
            }
            Ok(out)
        })
    }
}
