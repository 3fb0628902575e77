"""The official Cocobase Python SDK (PyPI cocobase==1.5.0) against `larder serve`.

Run by tests/sdk_cocobase.rs. Environment: LARDER_URL, LARDER_SK (the app's admin key).
Prints one line per check and a closing `N passed, N failed` line; exits non-zero on failure.
"""

import io
import os
import sys
import traceback

import requests

from cocobase_client import CocoBaseClient, CocobaseError, QueryBuilder

URL = os.environ["LARDER_URL"]
SK = os.environ["LARDER_SK"]
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


def refused(function, *fragments):
    try:
        function()
    except CocobaseError as error:
        text = str(error)
        assert all(f in text for f in fragments), (text, fragments)
        return text
    raise AssertionError("expected a CocobaseError")


def app():
    return CocoBaseClient(api_key=SK, base_url=URL)


state = {}


def collections_as_admin():
    admin = app()
    notes = admin.create_collection("notes")
    assert notes.name == "notes", notes
    admin.create_collection("tasks")


def register_login_and_profile():
    ada = app()
    result = ada.auth.register("Ada@Example.com", PASSWORD, data={"name": "Ada"})
    assert not result.requires_2fa and ada.auth.get_token()
    user = ada.auth.get_current_user()
    assert user.email == "ada@example.com" and user.data["name"] == "Ada", user
    updated = ada.auth.update_user(data={"name": "Ada L.", "city": "London"})
    assert updated.data["city"] == "London"
    again = app()
    again.auth.login("ada@example.com", PASSWORD)
    assert again.auth.get_current_user().data["name"] == "Ada L."
    state["ada"] = ada


def documents_crud():
    ada = state["ada"]
    record = ada.create_document("notes", {"title": "Buy milk", "priority": 10})
    assert record["title"] == "Buy milk" and record.id, record.data
    fetched = ada.get_document("notes", record.id)
    assert fetched["priority"] == 10
    changed = ada.update_document("notes", record.id, {"title": "Buy oat milk"})
    assert changed["title"] == "Buy oat milk" and changed["priority"] == 10
    listed = ada.list_documents("notes")
    assert [r["title"] for r in listed] == ["Buy oat milk"]
    state["note"] = record.id


def queries_batches_count_aggregate():
    ada = state["ada"]
    made = ada.create_documents("tasks", [
        {"title": "a", "priority": 2, "pinned": True},
        {"title": "b", "priority": 10, "pinned": False},
        {"title": "c", "priority": 7, "pinned": True},
    ])
    assert len(made) == 3
    high = ada.list_documents("tasks", QueryBuilder().gte("priority", 5).from_dict({"sort": "priority", "order": "asc"}))
    assert [r["title"] for r in high] == ["c", "b"], [r.data for r in high]
    pinned = ada.list_documents("tasks", QueryBuilder().eq("pinned", True).from_dict({"sort": "priority", "order": "desc"}))
    assert [r["title"] for r in pinned] == ["c", "a"]
    page = ada.list_documents("tasks", QueryBuilder().from_dict({"sort": "priority", "order": "asc"}).limit(1).offset(1))
    assert [r["title"] for r in page] == ["c"]
    assert ada.count_documents("tasks")["count"] == 3
    assert ada.aggregate_documents("tasks", "priority", "sum")["result"] == 19
    updated = ada.update_documents("tasks", {made[0].id: {"title": "a2"}})
    assert updated[0]["title"] == "a2"
    ada.delete_documents("tasks", [r.id for r in made])
    assert ada.count_documents("tasks")["count"] == 0


def other_users_see_nothing():
    bob = app()
    bob.auth.register("bob@example.com", PASSWORD)
    refused(lambda: bob.get_document("notes", state["note"]), "not found")
    assert bob.list_documents("notes") == []
    assert bob.count_documents("notes")["count"] == 0
    refused(lambda: bob.update_document("notes", state["note"], {"title": "mine"}), "not found")
    refused(lambda: bob.create_collection("stolen"), "403")
    refused(lambda: bob.delete_collection("notes"), "403")
    refused(lambda: bob.auth.list_users(), "403")


def a_bad_key_is_401():
    bad = CocoBaseClient(api_key="sk_live_not_a_key", base_url=URL)
    refused(lambda: bad.list_documents("notes"), "401")


def second_factor():
    carol = app()
    carol.auth.register("carol@example.com", PASSWORD)
    carol.auth.enable_2fa()
    step = app().auth.login("carol@example.com", PASSWORD)
    assert step.requires_2fa, step
    admin = app()
    # The code is read from the server's outbox through the admin API.
    import requests
    outbox = requests.get(f"{URL}/api/admin/outbox", headers={"x-api-key": SK}, timeout=10).json()
    code = [m for m in outbox if m["message"]["to"] == ["carol@example.com"]][-1]["message"]["variables"]["code"]
    user = admin.auth.verify_2fa_login("carol@example.com", code)
    assert admin.auth.get_token() and user.email == "carol@example.com"


def files():
    ada = state["ada"]
    # upload_file: the app key, one file; the answer's URL serves the bytes.
    uploaded = app().upload_file(io.BytesIO(b"\x89PNG logo"))
    assert uploaded["size"] == 9 and uploaded["url"].startswith("http"), uploaded
    got = requests.get(uploaded["url"], timeout=10)
    assert got.status_code == 200 and got.content == b"\x89PNG logo"
    # A document with a file field: its URL is stored in the field.
    photo = io.BytesIO(os.urandom(700_000))
    photo.name = "photo.jpg"
    doc = ada.create_document_with_files("notes", {"title": "with photo"}, {"photo": photo})
    assert doc.data["title"] == "with photo", doc.data
    url = doc.data["photo"]
    assert url.endswith("_photo.jpg"), url
    served = requests.get(url, timeout=10)
    assert served.content == photo.getvalue()
    assert served.headers["Content-Type"] == "image/jpeg"
    updated = ada.update_document_with_files("notes", doc.id, {"title": "two"}, {"thumb": io.BytesIO(b"T")})
    assert updated.data["title"] == "two" and updated.data["photo"] == url, updated.data
    # Another user cannot attach files to it.
    bob = app()
    bob.auth.login("bob@example.com", PASSWORD)
    refused(lambda: bob.update_document_with_files("notes", doc.id, files={"x": io.BytesIO(b"x")}), "failed")
    # Deleting the document deletes its files.
    assert ada.delete_document("notes", doc.id) is True
    assert requests.get(url, timeout=10).status_code == 404
    # Signup and profile update with files: URLs in the profile data.
    dan = app()
    dan.auth.register_with_files("dan@example.com", PASSWORD, data={"name": "Dan"}, files={"avatar": io.BytesIO(b"AV")})
    avatar = dan.auth.user.data["avatar"]
    assert requests.get(avatar, timeout=10).content == b"AV"
    user = dan.auth.update_user_with_files(data={"bio": "hi"}, files={"banner": io.BytesIO(b"BN")})
    assert user.data["name"] == "Dan" and user.data["bio"] == "hi" and user.data["avatar"] == avatar, user.data
    assert requests.get(user.data["banner"], timeout=10).content == b"BN"


def delete_document_and_collection():
    ada = state["ada"]
    assert ada.delete_document("notes", state["note"]) is True
    refused(lambda: ada.get_document("notes", state["note"]), "not found")
    assert app().delete_collection("tasks") is True


for name, function in [
    ("collections as the admin key", collections_as_admin),
    ("register, login, profile", register_login_and_profile),
    ("document CRUD with the double-wrapped create", documents_crud),
    ("queries, batches, count, aggregate", queries_batches_count_aggregate),
    ("other users see nothing and manage nothing", other_users_see_nothing),
    ("a bad key is 401", a_bad_key_is_401),
    ("second factor", second_factor),
    ("files: upload, document and profile fields", files),
    ("delete document and collection", delete_document_and_collection),
]:
    check(name, function)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
