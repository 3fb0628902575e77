"""The ekoDB Python client (PyPI ekodb-client==0.31.0) subscribing to larder's change feed.

Run by tests/sdk_ekodb.rs. Environment: LARDER_URL, LARDER_SK (a secret key). Prints one line
per check and a closing `N passed, N failed` line; exits non-zero on failure.
"""

import asyncio
import os
import sys
import traceback

import ekodb_client

URL = os.environ["LARDER_URL"]
SK = os.environ["LARDER_SK"]

passed = 0
failed = 0


async def check(name, coroutine):
    global passed, failed
    try:
        await asyncio.wait_for(coroutine, timeout=30)
        passed += 1
        print(f"ok   {name}")
    except Exception:  # noqa: BLE001 - report every failure and go on
        failed += 1
        print(f"FAIL {name}")
        traceback.print_exc()


async def next_event(receiver):
    event = await asyncio.wait_for(receiver.recv(), timeout=10)
    assert event is not None, "the subscription ended"
    return event


async def quiet(receiver):
    try:
        extra = await asyncio.wait_for(receiver.recv(), timeout=0.3)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected notification {extra}")


async def websocket_feed():
    client = ekodb_client.Client.new(URL, SK, should_retry=False, timeout_secs=10)
    ws = await client.websocket(URL.replace("http://", "ws://"))
    receiver = await ws.subscribe("orders")
    stored = await client.insert("orders", {"status": "pending", "n": 1})
    event = await next_event(receiver)
    assert event["event"] == "insert", event
    assert event["record_ids"] == [stored["id"]], event
    record = event["records"]
    assert record["status"] == "pending", event
    await client.update("orders", stored["id"], {"status": "shipped"})
    event = await next_event(receiver)
    assert event["event"] == "update" and event["records"]["status"] == "shipped", event
    await client.delete("orders", stored["id"])
    event = await next_event(receiver)
    assert event["event"] == "delete" and event["record_ids"] == [stored["id"]], event
    await ws.ws_unsubscribe("orders")
    await ws.close()


async def filtered_feed():
    client = ekodb_client.Client.new(URL, SK, should_retry=False, timeout_secs=10)
    ws = await client.websocket(URL.replace("http://", "ws://"))
    receiver = await ws.subscribe("orders", filter_field="status", filter_value="pending")
    other = await client.insert("orders", {"status": "shipped", "n": 2})
    await client.delete("orders", other["id"])
    wanted = await client.insert("orders", {"status": "pending", "n": 3})
    event = await next_event(receiver)
    assert event["record_ids"] == [wanted["id"]], (
        "a change and a delete of a non-matching record are not sent",
        event,
    )
    await quiet(receiver)
    await ws.close()


async def sse_feed():
    client = ekodb_client.Client.new(URL, SK, should_retry=False, timeout_secs=10)
    receiver = await client.subscribe_sse("orders")
    stored = await client.insert("orders", {"status": "pending", "n": 4})
    event = await next_event(receiver)
    assert event["event"] == "insert" and event["record_ids"] == [stored["id"]], event


async def refused_without_rights():
    client = ekodb_client.Client.new(URL, SK, should_retry=False, timeout_secs=10)
    ws = await client.websocket(URL.replace("http://", "ws://"))
    try:
        await ws.subscribe("missing_collection")
    except Exception as error:  # the client raises its API error
        assert "404" in str(error) or "not found" in str(error).lower(), error
    else:
        raise AssertionError("subscribing to a missing collection was not refused")
    await ws.close()


async def main():
    await check("websocket: insert, update and delete notifications", websocket_feed())
    await check("websocket: a filter holds back other records and their deletes", filtered_feed())
    await check("server-sent events: mutations", sse_feed())
    await check("websocket: a missing collection is refused", refused_without_rights())


asyncio.run(main())
print(f"{passed} passed, {failed} failed", flush=True)
sys.stderr.flush()
# The client's own threads (its runtime, an SSE reader still open) can crash the interpreter
# while it finalizes; the checks are done, so the process ends without finalizing.
os._exit(1 if failed else 0)
