//! The SMTP mailer against a local SMTP sink started by this test: a few lines of the protocol
//! on 127.0.0.1, keeping what it receives.
#![cfg(feature = "smtp")]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use larder::{Client, Db, MailMessage, NewUser, SmtpMailer, SmtpSecurity};

/// Accepts one SMTP session per message and sends each message's envelope and data back.
fn sink(messages: usize) -> (u16, mpsc::Receiver<(Vec<String>, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sent, received) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(messages) {
            let stream = stream.unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            let mut envelope = Vec::new();
            let mut data = String::new();
            writer.write_all(b"220 sink ESMTP\r\n").unwrap();
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let command = line.trim_end().to_owned();
                let upper = command.to_ascii_uppercase();
                if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                    writer.write_all(b"250-sink\r\n250 8BITMIME\r\n").unwrap();
                } else if upper.starts_with("MAIL FROM") || upper.starts_with("RCPT TO") {
                    envelope.push(command);
                    writer.write_all(b"250 OK\r\n").unwrap();
                } else if upper == "DATA" {
                    writer.write_all(b"354 go ahead\r\n").unwrap();
                    loop {
                        line.clear();
                        reader.read_line(&mut line).unwrap();
                        if line == ".\r\n" {
                            break;
                        }
                        data.push_str(&line);
                    }
                    writer.write_all(b"250 queued\r\n").unwrap();
                } else if upper == "QUIT" {
                    writer.write_all(b"221 bye\r\n").unwrap();
                    break;
                } else {
                    writer.write_all(b"250 OK\r\n").unwrap();
                }
            }
            let _ = sent.send((envelope, data));
        }
    });
    (port, received)
}

#[test]
fn mail_is_delivered_over_smtp_and_kept_in_the_outbox() {
    let (port, received) = sink(2);
    let mailer =
        SmtpMailer::new("127.0.0.1", port, SmtpSecurity::Plain, "app@example.com").unwrap();
    let db = Db::builder().mailer(mailer).in_memory().unwrap();
    db.mail()
        .send(MailMessage {
            to: vec!["ada@example.com".into()],
            cc: vec!["bob@example.com".into()],
            subject: Some("Hello".into()),
            text: Some("plain body".into()),
            html: Some("<p>html body</p>".into()),
            ..MailMessage::default()
        })
        .unwrap();
    let (envelope, data) = received.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(
        envelope.iter().any(|c| c.contains("<app@example.com>")),
        "{envelope:?}"
    );
    assert!(envelope.iter().any(|c| c.contains("<ada@example.com>")));
    assert!(envelope.iter().any(|c| c.contains("<bob@example.com>")));
    assert!(data.contains("Subject: Hello"), "{data}");
    assert!(data.contains("plain body") && data.contains("html body"));

    // An account flow goes out the same way.
    db.users()
        .signup(
            NewUser::new("carol@example.com", "a long enough passphrase"),
            &Client::unknown(),
        )
        .unwrap();
    db.users()
        .request_password_reset("carol@example.com")
        .unwrap();
    let (_, data) = received.recv_timeout(Duration::from_secs(20)).unwrap();
    let code = db.mail().outbox().unwrap().pop().unwrap().message.variables["code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(data.contains(&code), "the mailed text carries the code");
    assert_eq!(db.mail().outbox().unwrap().len(), 2);
}

#[test]
fn an_unreachable_server_fails_send_mail_but_not_the_flows() {
    let unused = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mailer =
        SmtpMailer::new("127.0.0.1", unused, SmtpSecurity::Plain, "app@example.com").unwrap();
    let db = Db::builder().mailer(mailer).in_memory().unwrap();
    let direct = db.mail().send(MailMessage {
        to: vec!["ada@example.com".into()],
        subject: Some("x".into()),
        text: Some("y".into()),
        ..MailMessage::default()
    });
    assert!(direct.is_err());
    db.users()
        .request_password_reset("nobody@example.com")
        .unwrap();
    assert!(SmtpMailer::new("127.0.0.1", 25, SmtpSecurity::Plain, "not an address").is_err());
}
