"""The official urBackend Python SDK (PyPI urbackend==0.1.0) against `larder serve`.

Run by tests/sdk_urbackend.rs, which creates the virtualenv, prepares the database and starts
the server. Environment: LARDER_URL, LARDER_SK (secret key), LARDER_PK (publishable key).
Prints one line per check and a closing `N passed, N failed` line; exits non-zero on failure.
"""

import hashlib
import os
import sys
import tempfile
import traceback

import requests

from urbackend import (
    AuthError,
    NotFoundError,
    RateLimitError,
    StorageError,
    UrBackendClient,
    ValidationError,
)

URL = os.environ["LARDER_URL"]
SK = os.environ["LARDER_SK"]
PK = os.environ["LARDER_PK"]
PASSWORD = "a long enough passphrase"

passed = 0
failed = 0


def check(name, function):
    global passed, failed
    try:
        function()
        passed += 1
        print(f"ok   {name}")
    except Exception:  # noqa: BLE001 - report every failure and go on
        failed += 1
        print(f"FAIL {name}")
        traceback.print_exc()


def expect(error_type, function, status=None):
    try:
        function()
    except error_type as error:
        if status is not None:
            assert error.status_code == status, (error.status_code, status, str(error))
        assert isinstance(str(error), str) and str(error), "a readable message"
        return error
    raise AssertionError(f"expected {error_type.__name__}")


def client(key=PK, header_mode=True):
    extra = {"x-refresh-token-mode": "header"} if header_mode else None
    return UrBackendClient(api_key=key, base=URL, extra_headers=extra)


state = {}


def signup_and_login():
    app = client()
    created = app.auth.sign_up("Ada@Example.com", PASSWORD, username="ada", name="Ada", phone="555")
    assert created["_id"] and created["email"] == "ada@example.com", created
    assert "password" not in created and "passwordHash" not in created
    login = app.auth.login("ada@example.com", PASSWORD)
    assert login["accessToken"] == app.auth.get_token()
    assert login["refreshToken"], "header mode returns the refresh token"
    state["app"], state["user_id"] = app, created["_id"]
    state["refresh"] = login["refreshToken"]


def me_and_profile():
    app = state["app"]
    me = app.auth.me()
    assert me["email"] == "ada@example.com" and me["name"] == "Ada"
    updated = app.auth.update_profile({"bio": "engines"})
    assert updated["user"]["bio"] == "engines", updated
    expect(ValidationError, lambda: app.auth.update_profile({"emailVerified": True}), 400)
    profile = client().auth.public_profile("ada")
    assert profile["name"] == "Ada" and "phone" not in profile and "email" not in profile, profile
    expect(NotFoundError, lambda: client().auth.public_profile("nobody"), 404)


def enumeration_and_bad_credentials():
    wrong = expect(AuthError, lambda: client().auth.login("ada@example.com", "not the password"), 401)
    unknown = expect(AuthError, lambda: client().auth.login("ghost@example.com", "not the password"), 401)
    assert str(wrong) == str(unknown)
    expect(ValidationError, lambda: client().auth.sign_up("ADA@example.com", "another passphrase"), 400)
    expect(AuthError, lambda: client("pk_live_invalid").db.get_all("posts"), 401)
    forged = client()
    forged.auth.set_token("e30.e30.forged")
    expect(AuthError, lambda: forged.auth.me(), 401)


def refresh_rotation_and_replay():
    app = state["app"]
    old = state["refresh"]
    renewed = app.auth.refresh_token(old)
    assert renewed["accessToken"] and renewed["refreshToken"] != old
    assert app.auth.me()["email"] == "ada@example.com"
    expect(AuthError, lambda: app.auth.refresh_token(old), 401)
    # The replay ended the whole session: the newest tokens are dead too.
    expect(AuthError, lambda: app.auth.refresh_token(renewed["refreshToken"]), 401)
    expect(AuthError, lambda: app.auth.me(), 401)
    app.auth.login("ada@example.com", PASSWORD)
    assert app.auth.me()["email"] == "ada@example.com"


def cookie_mode_refresh():
    app = client(header_mode=False)
    login = app.auth.login("ada@example.com", PASSWORD)
    assert "refreshToken" not in login, "cookie mode keeps it out of the body"
    first = app.auth.refresh_token()
    second = app.auth.refresh_token()
    assert first["accessToken"] and second["accessToken"] and app.auth.me()["email"]


def documents_as_a_user():
    app = state["app"]
    token = app.auth.get_token()
    doc = app.db.insert("posts", {"title": "hello", "price": 10, "published": True}, token=token)
    assert doc["_id"] and doc["userId"] == state["user_id"], doc
    for title, price, published in [("b", 2, False), ("c", 7, True), ("d", 30, True)]:
        app.db.insert("posts", {"title": title, "price": price, "published": published}, token=token)
    listed = app.db.get_all("posts", sort="price", token=token)
    assert [d["price"] for d in listed] == [2, 7, 10, 30], listed
    filtered = app.db.get_all("posts", filter_={"published": True, "price_gt": 5}, sort="-price", token=token)
    assert [d["title"] for d in filtered] == ["d", "hello", "c"], filtered
    page = app.db.get_all("posts", sort="price", limit=2, page=2, token=token)
    assert [d["price"] for d in page] == [10, 30]
    assert app.db.count("posts", filter_={"published": True}, token=token) == 3
    one = app.db.get_one("posts", doc["_id"], token=token)
    assert one["title"] == "hello"
    # The hosted service's PUT sets the given fields and keeps the others (MongoDB's $set),
    # although the SDK's docstring says "full replacement": larder does what the service does.
    replaced = app.db.update("posts", doc["_id"], {"title": "replaced"}, token=token)
    assert replaced["title"] == "replaced" and replaced["price"] == doc["price"] and replaced["userId"] == state["user_id"]
    patched = app.db.patch("posts", doc["_id"], {"price": 11}, token=token)
    assert patched["title"] == "replaced" and patched["price"] == 11
    state["doc"] = doc["_id"]


def the_write_matrix():
    anonymous = client()
    expect(AuthError, lambda: anonymous.db.insert("posts", {"title": "x"}), 401)
    bob = client()
    bob.auth.sign_up("bob@example.com", PASSWORD)
    bob.auth.login("bob@example.com", PASSWORD)
    token = bob.auth.get_token()
    expect(AuthError, lambda: bob.db.patch("posts", state["doc"], {"title": "mine"}, token=token), 403)
    expect(AuthError, lambda: bob.db.delete("posts", state["doc"], token=token), 403)
    expect(AuthError, lambda: bob.db.insert("posts", {"title": "x", "userId": state["user_id"]}, token=token), 403)
    server = client(SK)
    made = server.db.insert("private_notes", {"text": "server only"})
    assert made["_id"]
    expect(AuthError, lambda: anonymous.db.get_all("private_notes"), 401)
    expect(AuthError, lambda: anonymous.db.get_all("users"), 403)
    expect(AuthError, lambda: server.db.insert("users", {"email": "x"}), 403)
    assert anonymous.db.get_all("no_such_collection") == []


def delete_and_logout():
    app = state["app"]
    token = app.auth.get_token()
    assert app.db.delete("posts", state["doc"], token=token) == {"deleted": True}
    expect(NotFoundError, lambda: app.db.get_one("posts", state["doc"], token=token), 404)
    app.auth.logout()
    stale = client()
    stale.auth.set_token(token)
    expect(AuthError, lambda: stale.auth.me(), 401)


def change_password():
    app = client()
    app.auth.login("bob@example.com", PASSWORD)
    expect(AuthError, lambda: app.auth.change_password("wrong current", "a new passphrase"))
    app.auth.change_password(PASSWORD, "a new passphrase")
    expect(AuthError, lambda: client().auth.login("bob@example.com", PASSWORD), 401)
    client().auth.login("bob@example.com", "a new passphrase")


def mail_with_the_secret_key():
    sent = client(SK).mail.send("ada@example.com", subject="Hello", text="From the SDK")
    assert sent["provider"] == "outbox" and sent["id"], sent
    expect(AuthError, lambda: client().mail.send("ada@example.com", subject="x", text="y"), 403)


def storage_upload_download_delete():
    storage = client(SK).storage
    # Bytes: the three steps (signed URL, PUT to it, confirm), then a public download.
    result = storage.upload(b"hello world", filename="report.txt")
    assert result["provider"] == "internal" and result["path"].startswith("storage/"), result
    got = requests.get(result["url"], timeout=10)
    assert got.status_code == 200 and got.content == b"hello world", got.status_code
    assert got.headers["Content-Type"] == "text/plain", got.headers
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    # A 3 MB file from a path, streamed by the SDK: byte-identical, and ranges work.
    data = os.urandom(3 * 1024 * 1024 + 17)
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as handle:
        handle.write(data)
    try:
        big = storage.upload(handle.name)
    finally:
        os.unlink(handle.name)
    got = requests.get(big["url"], timeout=30)
    assert hashlib.sha256(got.content).hexdigest() == hashlib.sha256(data).hexdigest()
    part = requests.get(big["url"], headers={"Range": "bytes=1000-1999"}, timeout=10)
    assert part.status_code == 206 and part.content == data[1000:2000]
    # An HTML upload is served as a download, never rendered.
    page = storage.upload(b"<script>alert(1)</script>", filename="x.html")
    got = requests.get(page["url"], timeout=10)
    assert got.headers["Content-Disposition"].startswith("attachment"), got.headers
    # Delete, then the URL is gone; paths outside the project's storage are refused.
    storage.delete_file(result["path"])
    assert requests.get(result["url"], timeout=10).status_code == 404
    expect(StorageError, lambda: storage.delete_file(result["path"]), 404)
    expect(StorageError, lambda: storage.delete_file("../../etc/passwd"), 403)
    expect(StorageError, lambda: storage.delete_file("storage/../x"), 400)
    # The publishable key cannot upload (the SDK never sends a user token to storage).
    expect(StorageError, lambda: client().storage.upload(b"x", filename="x.txt"), 403)


def last_code(email):
    """The newest code mailed to `email`, read through the admin API's outbox."""
    outbox = requests.get(f"{URL}/api/admin/outbox", headers={"x-api-key": SK}, timeout=10).json()
    mails = [m for m in outbox if m["message"]["to"] == [email]]
    return mails[-1]["message"]["variables"]["code"]


def email_verification_and_password_reset():
    app = client()
    app.auth.sign_up("carol@example.com", PASSWORD)
    app.auth.resend_verification_otp("carol@example.com")
    expect(ValidationError, lambda: app.auth.verify_email("carol@example.com", "000000x"), 400)
    app.auth.verify_email("carol@example.com", last_code("carol@example.com"))
    app.auth.login("carol@example.com", PASSWORD)
    assert app.auth.me()["emailVerified"] is True
    unknown = client().auth.request_password_reset("nobody@example.com")
    known = client().auth.request_password_reset("carol@example.com")
    assert unknown == known, (unknown, known)
    error = expect(RateLimitError, lambda: client().auth.request_password_reset("carol@example.com"), 429)
    assert isinstance(error.retry_after, int)
    client().auth.reset_password("carol@example.com", last_code("carol@example.com"), "a brand new passphrase")
    expect(AuthError, lambda: app.auth.me(), 401)
    client().auth.login("carol@example.com", "a brand new passphrase")


def throttling_says_when_to_retry():
    app = client()
    for _ in range(10):
        try:
            app.auth.login("victim@example.com", "guess guess guess")
        except AuthError:
            pass
    error = expect(RateLimitError, lambda: app.auth.login("victim@example.com", "guess guess guess"), 429)
    assert isinstance(error.retry_after, int) and error.retry_after > 0, error.retry_after


for name, function in [
    ("signup and login", signup_and_login),
    ("me, profile update, public profile", me_and_profile),
    ("no enumeration, bad credentials", enumeration_and_bad_credentials),
    ("refresh rotation and replay", refresh_rotation_and_replay),
    ("cookie-mode refresh", cookie_mode_refresh),
    ("documents as a user", documents_as_a_user),
    ("the key and owner write matrix", the_write_matrix),
    ("delete and logout", delete_and_logout),
    ("change password", change_password),
    ("mail with the secret key", mail_with_the_secret_key),
    ("storage: upload, download, ranges, delete", storage_upload_download_delete),
    ("email verification and password reset", email_verification_and_password_reset),
    ("throttling with Retry-After", throttling_says_when_to_retry),
]:
    check(name, function)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
