//! larder's own pages behind the mailed links, over a real socket: with no app URL configured,
//! a reset mail links to larder's form and a verification mail to its confirmation page.
#![cfg(feature = "testing")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use larder::testing::TestServer;
use larder::{Client, NewUser};

fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

fn link(server: &TestServer) -> String {
    let message = server.outbox().unwrap().pop().unwrap();
    message.message.variables["link"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_reset_form_changes_the_password_once() {
    let server = TestServer::start().unwrap();
    server
        .db
        .users()
        .signup(
            NewUser::new("a@example.com", "a long enough passphrase"),
            &Client::unknown(),
        )
        .unwrap();
    server
        .db
        .users()
        .request_password_reset("a@example.com")
        .unwrap();
    let link = link(&server);
    assert!(
        link.starts_with(&format!("{}/auth/reset-password?token=", server.url())),
        "{link}"
    );
    let path = link.trim_start_matches(&server.url());
    let form = exchange(
        server.addr(),
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    assert!(form.starts_with("HTTP/1.1 200"), "{form}");
    let lower = form.to_ascii_lowercase();
    assert!(lower.contains("content-type: text/html; charset=utf-8"));
    assert!(lower.contains("referrer-policy: no-referrer"));
    assert!(lower.contains("content-security-policy: default-src 'none'"));
    assert!(form.contains("<form method=\"post\""));

    let token = link.split("token=").nth(1).unwrap();
    let post = |password: &str| {
        let body = format!("token={token}&password={}", password.replace(' ', "+"));
        exchange(
            server.addr(),
            &format!(
                "POST /auth/reset-password HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let weak = post("short");
    assert!(
        weak.starts_with("HTTP/1.1 400") && weak.contains("at least 8"),
        "{weak}"
    );
    let done = post("a brand new passphrase");
    assert!(
        done.starts_with("HTTP/1.1 200") && done.contains("Password changed"),
        "{done}"
    );
    server
        .db
        .users()
        .login(
            "a@example.com",
            "a brand new passphrase",
            &Client::unknown(),
        )
        .unwrap();
    let again = post("yet another passphrase");
    assert!(again.starts_with("HTTP/1.1 400"), "single use: {again}");
}

#[test]
fn the_verification_page_confirms_the_address() {
    let server = TestServer::start().unwrap();
    server
        .db
        .users()
        .signup(
            NewUser::new("v@example.com", "a long enough passphrase"),
            &Client::unknown(),
        )
        .unwrap();
    server
        .db
        .users()
        .request_email_verification("v@example.com")
        .unwrap();
    let link = link(&server);
    let path = link.trim_start_matches(&server.url());
    let page = exchange(
        server.addr(),
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("Email confirmed"),
        "{page}"
    );
    assert!(server.db.users().list().unwrap()[0].email_verified);
    let reused = exchange(
        server.addr(),
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    assert!(
        reused.starts_with("HTTP/1.1 400") && reused.contains("Link expired"),
        "{reused}"
    );
    let forged = exchange(
        server.addr(),
        "GET /auth/verify-email?token=%3Cscript%3E HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        !forged.contains("<script>"),
        "nothing from the URL is echoed"
    );
}
